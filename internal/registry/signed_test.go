package registry

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/signing"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
	"github.com/incus-appliance/registry/internal/store"
)

// newSignedScene is a scene of shards catalog files whose registries sign
// with a new key.
func newSignedScene(t testing.TB, shards int) *scene {
	t.Helper()
	s := newSceneOf(t, shards)
	s.key = signingtest.NewKey(t, "registry")
	s.r = s.another()
	return s
}

// eachLayout runs f for a registry of one catalog file and one of four
// (once: not again in TestShardedSuite's run).
func eachLayout(t *testing.T, f func(t *testing.T, shards int)) {
	if testShards != 1 {
		t.Skip("runs with both layouts in the main run")
	}
	for _, shards := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d files", shards), func(t *testing.T) { f(t, shards) })
	}
}

// mustVerifySigned fails the test unless the registry verifies clean with
// keyring and every signed document is ok; each product file's .sjson
// holds exactly its bytes (checked here too, not only by Verify).
func (s *scene) mustVerifySigned(kr *signing.Keyring) *VerifyReport {
	s.t.Helper()
	rep := s.verifyWith(VerifyOptions{Keyring: kr, NoFiles: true})
	if !rep.OK() {
		s.t.Fatalf("verify --keyring found problems: %q", rep.Problems)
	}
	l, _, err := s.r.readLayout(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	if len(rep.Signed) != 1+len(l.Files()) {
		s.t.Fatalf("verify checked %d signed documents, want %d", len(rep.Signed), 1+len(l.Files()))
	}
	for _, d := range rep.Signed {
		if d.Status != "ok" {
			s.t.Errorf("%s: %s", d.Path, d.Status)
		}
	}
	contents := storeContents(s.t, s.fs.Store)
	for _, key := range l.Files() {
		v, err := kr.Verify([]byte(contents[catalog.SignedPath(key)]), s.r.now())
		if err != nil || string(v.Body) != contents[key] {
			s.t.Errorf("%s does not hold %s: %v", catalog.SignedPath(key), key, err)
		}
	}
	return rep
}

// TestSignedCatalog: with a key, every change (publish, a new version,
// remove, prune) leaves each product file and index.json signed: each
// .sjson holds its .json, index.json names each product file's digest,
// serials grow, and verify --keyring finds nothing wrong.
func TestSignedCatalog(t *testing.T) {
	eachLayout(t, func(t *testing.T, shards int) {
		s := newSignedScene(t, shards)
		kr := signingtest.Keyring(t, s.key)
		s.publish("redis", t0, 3)
		s.mustVerifySigned(kr)
		serial := indexStamp(t, s).Serial
		s.twoVersions()
		s.mustVerifySigned(kr)
		if now := indexStamp(t, s).Serial; now <= serial {
			t.Errorf("index serial %d after more publishes, was %d", now, serial)
		}
		s.remove("redis")
		s.mustVerifySigned(kr)
		s.prune(PruneOptions{Keep: 1})
		rep := s.mustVerifySigned(kr)
		for _, d := range rep.Signed {
			if d.Signer != string(s.key.Fingerprint) || d.Serial < 1 || d.Expires == "" {
				t.Errorf("%s: signer %s serial %d expires %q", d.Path, d.Signer, d.Serial, d.Expires)
			}
		}
		if exp, _ := indexStamp(t, s).ExpiresAt(); exp.Sub(time.Now()) < DefaultSignatureValidity-time.Hour {
			t.Errorf("the index expires at %s: want about %s from now", exp, DefaultSignatureValidity)
		}
	})
}

// indexStamp is index.json's stamp.
func indexStamp(t testing.TB, s *scene) catalog.Stamp {
	t.Helper()
	st, err := catalog.ReadStamp([]byte(storeContents(t, s.fs.Store)[catalog.IndexPath]))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSignedRegistryRefusesChangesWithoutKey: once a registry is signed,
// publish, remove and prune without the key fail with ErrSignedRegistry
// and change nothing.
func TestSignedRegistryRefusesChangesWithoutKey(t *testing.T) {
	s := newSignedScene(t, testShards)
	s.twoVersions()
	unsigned := &Registry{Store: s.fs, BackoffBase: time.Millisecond}
	same := s.frozen()
	req := makeImage(t, "nginx", t0.Add(2*time.Hour), 3)
	if _, err := unsigned.Publish(s.ctx, req); !errors.Is(err, ErrSignedRegistry) {
		t.Errorf("publish without the key: %v, want ErrSignedRegistry", err)
	}
	if _, err := unsigned.Remove(s.ctx, "nginx", RemoveOptions{}); !errors.Is(err, ErrSignedRegistry) {
		t.Errorf("remove without the key: %v, want ErrSignedRegistry", err)
	}
	if _, err := unsigned.Prune(s.ctx, PruneOptions{Keep: 1, Grace: time.Hour}); !errors.Is(err, ErrSignedRegistry) {
		t.Errorf("prune without the key: %v, want ErrSignedRegistry", err)
	}
	if _, err := unsigned.Sign(s.ctx); err == nil {
		t.Errorf("sign without the key: no error")
	}
	if msg := ErrSignedRegistry.Error(); !strings.Contains(msg, "--signing-key") || !strings.Contains(msg, "PUBLISH_SIGNING_KEY") || strings.Contains(msg, "\n") {
		t.Errorf("the error does not say what to do on one line: %s", msg)
	}
	same("changes without the key")
}

// TestSignSignsAnUnsignedRegistry: Sign turns a registry published
// without a key into a signed one (every product file of a registry of
// several, including those no publish wrote yet), and publishing with
// a key into an unsigned registry signs it whole too.
func TestSignSignsAnUnsignedRegistry(t *testing.T) {
	eachLayout(t, func(t *testing.T, shards int) {
		s := newSceneOf(t, shards)
		s.twoVersions()
		s.key = signingtest.NewKey(t, "registry")
		s.r = s.another()
		res := succeeds[*SignResult](s, "sign")(s.r.Sign(s.ctx))
		if len(res.Files) != shards+1 || res.Signer != string(s.key.Fingerprint) {
			t.Errorf("sign: %+v", res)
		}
		s.mustVerifySigned(signingtest.Keyring(t, s.key))

		s = newSceneOf(t, shards)
		s.publish("redis", t0, 3)
		s.key = signingtest.NewKey(t, "registry")
		s.r = s.another()
		s.twoVersions()
		s.mustVerifySigned(signingtest.Keyring(t, s.key))
	})
}

// TestSignRepairsHalfSigned: a command stopped right after writing a
// product file, before its .sjson, leaves the registry half-signed:
// verify --keyring says so; the signed documents still verify and agree
// (the older moment); Sign repairs it, and so does the next publish.
func TestSignRepairsHalfSigned(t *testing.T) {
	eachLayout(t, func(t *testing.T, shards int) {
		for _, repair := range []string{"sign", "publish"} {
			s := newSignedScene(t, shards)
			kr := signingtest.Keyring(t, s.key)
			s.publish("nginx", t0, 1)
			s.fs.beforePut = func(key string, _ store.PutOptions) error {
				if strings.HasSuffix(key, ".sjson") && key != catalog.SignedIndexPath {
					return errKilled
				}
				return nil
			}
			if _, err := s.r.Publish(s.ctx, makeImage(t, "nginx", t0.Add(time.Hour), 2)); !errors.Is(err, errKilled) {
				t.Fatalf("publish killed before its .sjson: %v", err)
			}
			s.fs.beforePut = nil
			rep := s.verifyWith(VerifyOptions{Keyring: kr})
			if !strings.Contains(problems(rep), "half-signed") {
				t.Errorf("verify --keyring of a half-signed registry: %q", rep.Problems)
			}
			for _, d := range rep.Signed {
				if d.Status != "ok" && d.Status != "behind" {
					t.Errorf("%s: %s", d.Path, d.Status)
				}
			}
			if repair == "sign" {
				succeeds[*SignResult](s, "sign")(s.r.Sign(s.ctx))
			} else {
				s.publish("nginx", t0.Add(2*time.Hour), 3)
			}
			s.mustVerifySigned(kr)
		}
	})
}

// TestKeyRotation: a registry signed with the old key moves to a new one
// as the README says: verifiers get a keyring with both keys, which
// accepts the registry throughout (signed by the old key, part by each
// after a publish with the new one, all by the new one after Sign); a
// keyring of the new key alone (the old key dropped too early) refuses
// each document still signed by the old key (unknown key) until Sign
// re-signs it; then the old key leaves the keyring, which the new one
// alone satisfies, and a keyring of the old key alone refuses every
// document (unknown key).
func TestKeyRotation(t *testing.T) {
	eachLayout(t, func(t *testing.T, shards int) {
		s := newSignedScene(t, shards)
		old, next := s.key, signingtest.NewKey(t, "next")
		both, nextOnly := signingtest.Keyring(t, old, next), signingtest.Keyring(t, next)
		s.twoVersions()
		s.publish("redis", t0, 3)
		s.mustVerifySigned(both)
		s.mustRefuseOldSigned(both, nextOnly, old)

		s.key = next
		s.r = s.another()
		s.publish("nginx", t0.Add(2*time.Hour), 4)
		s.mustVerifySigned(both)
		if stillOld := s.mustRefuseOldSigned(both, nextOnly, old); shards > 1 && stillOld == 0 {
			t.Errorf("a publish with the new key re-signed all %d catalog files: want only the one it wrote and the index", shards)
		}

		succeeds[*SignResult](s, "sign")(s.r.Sign(s.ctx))
		for _, d := range s.mustVerifySigned(both).Signed {
			if d.Signer != string(next.Fingerprint) {
				t.Errorf("%s signed by %s after signing with the new key", d.Path, d.Signer)
			}
		}
		s.mustVerifySigned(signingtest.Keyring(t, next))
		rep := s.verifyWith(VerifyOptions{Keyring: signingtest.Keyring(t, old), NoFiles: true})
		for _, d := range rep.Signed {
			if d.Status != "unknown-key" {
				t.Errorf("the old key alone: %s is %s, want unknown-key", d.Path, d.Status)
			}
		}
	})
}

// mustRefuseOldSigned checks the registry with nextOnly, a keyring without
// the old key: each document both (holding both keys) finds signed by old
// is unknown-key, every other one ok; it returns how many are refused.
func (s *scene) mustRefuseOldSigned(both, nextOnly *signing.Keyring, old *signingtest.Key) int {
	s.t.Helper()
	signers := map[string]string{}
	for _, d := range s.verifyWith(VerifyOptions{Keyring: both, NoFiles: true}).Signed {
		signers[d.Path] = d.Signer
	}
	rep := s.verifyWith(VerifyOptions{Keyring: nextOnly, NoFiles: true})
	refused := 0
	for _, d := range rep.Signed {
		want := "ok"
		if signers[d.Path] == string(old.Fingerprint) {
			want = "unknown-key"
			refused++
		}
		if d.Status != want {
			s.t.Errorf("without the old key: %s (signed by %s) is %s, want %s", d.Path, signers[d.Path], d.Status, want)
		}
	}
	if len(rep.Signed) != len(signers) {
		s.t.Errorf("without the old key: %d documents checked, with it %d", len(rep.Signed), len(signers))
	}
	if rep.OK() != (refused == 0) {
		s.t.Errorf("without the old key: verify OK = %v with %d documents refused: %q", rep.OK(), refused, rep.Problems)
	}
	return refused
}

// TestSignedLostResponses: the reply of every catalog write is lost (it
// landed; the retry finds it): publishes still succeed, and each file
// found written is signed, so the registry is fully signed.
func TestSignedLostResponses(t *testing.T) {
	eachLayout(t, func(t *testing.T, shards int) {
		s := newSignedScene(t, shards)
		var lost atomic.Int64 // the product files of a commit are written at once
		s.fs.afterPut = func(key string, _ store.PutOptions, err error) error {
			if strings.HasPrefix(key, "streams/") && err == nil {
				lost.Add(1)
				return fmt.Errorf("lost response: %w", store.ErrPreconditionFailed)
			}
			return err
		}
		s.twoVersions()
		s.fs.afterPut = nil
		if n := lost.Load(); n < 8 {
			t.Errorf("only %d writes lost their reply", n)
		}
		s.mustVerifySigned(signingtest.Keyring(t, s.key))
	})
}

// TestVerifySignedStatuses: verify --keyring warns before the signed
// catalog expires and refuses it once expired; a product file edited by
// hand (the .sjson no longer holds it) is a mismatch; a .sjson deleted is
// missing.
func TestVerifySignedStatuses(t *testing.T) {
	s := newSignedScene(t, testShards)
	s.r.Signing.Validity = 12 * time.Hour
	kr := signingtest.Keyring(t, s.key)
	s.publish("nginx", t0, 1)
	rep := s.mustVerifySigned(kr)
	if !strings.Contains(warnings(rep), "publish sign") {
		t.Errorf("no warning 12 hours before expiry: %q", rep.Warnings)
	}
	key := catalog.Layout(s.shards).FileOf("nginx:amd64")
	statuses := func() map[string]string {
		out := map[string]string{}
		for _, d := range s.verifyWith(VerifyOptions{Keyring: kr, NoFiles: true}).Signed {
			out[d.Path] = d.Status
		}
		return out
	}
	s.at(func() time.Time { return time.Now().Add(13 * time.Hour) })
	if st := statuses(); st[catalog.SignedIndexPath] != "expired" || st[catalog.SignedPath(key)] != "expired" {
		t.Errorf("13 hours later: %v", st)
	}
	s.at(nil)
	data := storeContents(t, s.fs.Store)
	s.replace(key, []byte(strings.Replace(data[key], `"nginx"`, `"nginx,evil"`, 1)))
	if st := statuses(); st[catalog.SignedPath(key)] != "mismatch" {
		t.Errorf("product file edited by hand: %v", st)
	}
	s.replace(key, []byte(data[key]))
	if err := s.fs.Store.Delete(s.ctx, catalog.SignedIndexPath); err != nil {
		t.Fatal(err)
	}
	if st := statuses(); st[catalog.SignedIndexPath] != "missing" {
		t.Errorf("index.sjson deleted: %v", st)
	}
}
