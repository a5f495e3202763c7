package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/signing"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
	"github.com/incus-appliance/registry/internal/store"
)

// watchSignedWrites fails the test when a .sjson write could replace a
// signed document by one of a lower or equal serial, or is not
// conditional. A conditional write succeeds only if the object still has
// the ETag it names, so comparing with the object as it stands right
// before the write covers every write that lands.
func watchSignedWrites(t *testing.T, fs *faultStore) {
	serial := func(signed []byte) int64 {
		body, err := signing.Unverified(signed)
		if err != nil {
			t.Errorf("a .sjson written is not clear-signed: %v", err)
			return 0
		}
		st, _ := catalog.ReadStamp(body)
		return st.Serial
	}
	fs.inspectPut = func(key string, body []byte, opts store.PutOptions) {
		if !strings.HasSuffix(key, ".sjson") {
			return
		}
		if opts.IfMatch == "" && !opts.IfAbsent {
			t.Errorf("%s written unconditionally", key)
			return
		}
		rc, info, err := fs.Store.Get(context.Background(), key)
		if err != nil || info.ETag != opts.IfMatch {
			return // absent, or the write will lose
		}
		cur, _ := io.ReadAll(rc)
		rc.Close()
		if now, was := serial(body), serial(cur); now <= was {
			t.Errorf("%s: serial %d about to replace serial %d", key, now, was)
		}
	}
}

// signedImages are the images of 8 concurrent signing publishers (made
// once: a test repeats the workload): even ones new versions of nginx
// (all writing its catalog file), odd ones an appliance of their own; no
// deltas (not what these tests are about).
func signedImages(t testing.TB, publishers int) []PublishRequest {
	t.Helper()
	var out []PublishRequest
	for i := range publishers {
		req := makeImage(t, fmt.Sprintf("app%d", i), t0, int64(100+i))
		if i%2 == 0 {
			req = makeImage(t, "nginx", t0.Add(time.Duration(i+1)*time.Hour), int64(200+i))
		}
		req.DeltaDepth = 0
		out = append(out, req)
	}
	return out
}

// signedWorkload is what each publisher does: publish its image;
// publisher 1 then removes its appliance and prunes.
func signedWorkload(s *scene, images []PublishRequest) []func(r *Registry) error {
	var work []func(r *Registry) error
	for i, req := range images {
		work = append(work, func(r *Registry) error {
			if _, err := r.Publish(s.ctx, req); err != nil || i != 1 {
				return err
			}
			if _, err := r.Remove(s.ctx, req.Image.Name, RemoveOptions{}); err != nil {
				return err
			}
			_, err := r.Prune(s.ctx, PruneOptions{Keep: 2, Grace: time.Hour})
			return err
		})
	}
	return work
}

// runAll runs each piece of work with its own Registry (from newReg) at
// once and returns their errors.
func runAll(work []func(r *Registry) error, newReg func(i int) *Registry) []error {
	errs := make([]error, len(work))
	var wg sync.WaitGroup
	for i, w := range work {
		r := newReg(i)
		wg.Go(func() { errs[i] = w(r) })
	}
	wg.Wait()
	return errs
}

// TestSignedConcurrentWriters: 8 signing publishers at once (publishes
// into a shared catalog file and their own, a remove, a prune): once quiet, with no
// repair, every .sjson verifies and holds its .json, index.json names
// every product file as it is, and no .sjson was ever replaced by an
// older one.
func TestSignedConcurrentWriters(t *testing.T) {
	eachLayout(t, func(t *testing.T, shards int) {
		s := newSignedScene(t, shards)
		s.publish("nginx", t0, 1)
		watchSignedWrites(t, s.fs)
		errs := runAll(signedWorkload(s, signedImages(t, 8)), func(int) *Registry { return s.another() })
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		s.fs.inspectPut = nil
		s.mustVerifySigned(signingtest.Keyring(t, s.key))
	})
}

// TestSignedConcurrentWritersKilledAtEveryInstant: the 8 signing
// publishers of TestSignedConcurrentWriters, each killed at its n-th
// store operation, for every n until none is killed. Once quiet, every
// .sjson verifies with the key and holds its .json or an older serial of
// it (half-signed, which verify reports, never a mismatch), and no .sjson
// was replaced by an older one; then a repair — publish sign, or (with one
// catalog file) the next publish — leaves a registry that verifies with
// the keyring.
func TestSignedConcurrentWritersKilledAtEveryInstant(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	eachLayout(t, func(t *testing.T, shards int) {
		step := int64(1)
		if raceEnabled {
			step = 5
		}
		images := signedImages(t, 8)
		base, next := makeImage(t, "nginx", t0, 1), makeImage(t, "nginx", t0.Add(24*time.Hour), 999)
		key := signingtest.NewKey(t, "registry")
		kr := signingtest.Keyring(t, key)
		for n := int64(1); ; n += step {
			s := newSceneOf(t, shards)
			s.key = key
			s.r = s.another()
			mustPublish(t, s.r, base)
			watchSignedWrites(t, s.fs)
			errs := runAll(signedWorkload(s, images), func(int) *Registry {
				r := s.another()
				victim := &faultStore{Store: s.fs}
				victim.failAfter.Store(n)
				r.Store = victim
				return r
			})
			s.fs.inspectPut = nil
			killed := 0
			for _, err := range errs {
				if errors.Is(err, errKilled) {
					killed++
				} else if err != nil {
					t.Fatalf("kill after %d operations: unexpected error %v", n, err)
				}
			}
			rep := s.verifyWith(VerifyOptions{Keyring: kr, NoFiles: true})
			for _, d := range rep.Signed {
				if d.Status != "ok" && d.Status != "behind" {
					t.Fatalf("kill after %d operations: %s is %s: %q", n, d.Path, d.Status, rep.Problems)
				}
			}
			for _, p := range rep.Problems {
				if !strings.Contains(p, "half-signed") {
					t.Fatalf("kill after %d operations: %s", n, p)
				}
			}
			if n%2 == 1 || shards > 1 {
				succeeds[*SignResult](s, "sign")(s.r.Sign(s.ctx))
			} else {
				// With one catalog file the next publish rewrites it all;
				// with several it repairs only its own file and the index.
				mustPublish(t, s.r, next)
			}
			s.mustVerifySigned(kr)
			if killed == 0 {
				t.Logf("%d files: killed at each of the first %d operations of every publisher", shards, n-1)
				return
			}
		}
	})
}

// TestLateSignerNeverReplacesNewer: publisher A writes its product file,
// then stalls right before writing its .sjson while publisher B publishes
// twice over it; A's stalled write then loses (it is conditional), A
// finds a newer .sjson and leaves it, and goes on. No .sjson write ever
// goes back (watchSignedWrites) and the registry verifies.
func TestLateSignerNeverReplacesNewer(t *testing.T) {
	s := newSignedScene(t, testShards)
	s.publish("nginx", t0, 1)
	watchSignedWrites(t, s.fs)
	key := catalog.SignedPath(catalog.Layout(s.shards).FileOf("nginx:amd64"))
	a := s.another()
	stalled, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a.Store = &faultStore{Store: s.fs, beforePut: func(k string, _ store.PutOptions) error {
		if k == key {
			once.Do(func() { close(stalled); <-resume })
		}
		return nil
	}}
	done := make(chan error, 1)
	go func() {
		_, err := a.Publish(s.ctx, makeImage(t, "nginx", t0.Add(time.Hour), 2))
		done <- err
	}()
	<-stalled
	s.publish("redis", t0, 4) // maybe another file
	s.publish("nginx", t0.Add(2*time.Hour), 3)
	newer := serialOf(t, storeContents(t, s.fs.Store)[key])
	close(resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := serialOf(t, storeContents(t, s.fs.Store)[key]); got <= newer {
		t.Errorf("%s: serial %d after A's commit, B's was %d", key, got, newer)
	}
	s.fs.inspectPut = nil
	s.mustVerifySigned(signingtest.Keyring(t, s.key))
}

// serialOf is the serial of a stored .sjson.
func serialOf(t testing.TB, signed string) int64 {
	t.Helper()
	body, err := signing.Unverified([]byte(signed))
	if err != nil {
		t.Fatal(err)
	}
	st, err := catalog.ReadStamp(body)
	if err != nil {
		t.Fatal(err)
	}
	return st.Serial
}
