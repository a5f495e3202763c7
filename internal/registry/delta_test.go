package registry

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/delta"
	"github.com/incus-appliance/registry/internal/delta/deltatest"
	"github.com/incus-appliance/registry/internal/store"
)

// withDepth returns the requests with DeltaDepth depth.
func withDepth(vs []PublishRequest, depth int) []PublishRequest {
	for i := range vs {
		vs[i].DeltaDepth = depth
	}
	return vs
}

// deltaBases returns the bases of a publish's deltas, in its order.
func deltaBases(res *PublishResult) []string {
	var out []string
	for _, d := range res.Deltas {
		out = append(out, d.Base)
	}
	return out
}

// With DeltaDepth 2, each new version gets a delta from each of the last
// two versions (newest first), each checked by decoding, uploaded after
// the image's other files and listed; the oldest version is no base any
// more once two are newer.
func TestPublishMakesDeltasFromTheLastVersions(t *testing.T) {
	deltatest.Require(t)
	s := newScene(t)
	ctx, r, fs := s.ctx, s.r, s.fs
	vs := withDepth(updates(t, 4), 2)
	if res := mustPublish(t, r, vs[0]); res.Deltas != nil {
		t.Errorf("first version has deltas: %+v", res.Deltas)
	}
	for i, want := range [][]string{nil, {vk(0)}, {vk(1), vk(0)}, {vk(2), vk(1)}} {
		if i == 0 {
			continue
		}
		res := mustPublish(t, r, vs[i])
		if got := deltaBases(res); !slices.Equal(got, want) {
			t.Fatalf("version %d: deltas from %v, want %v", i, got, want)
		}
		ds := deltaItems(t, r, vk(i))
		if len(ds) != len(want) || len(res.Files) != 2+len(want) {
			t.Fatalf("version %d: delta items %+v, files %+v", i, ds, res.Files)
		}
		for j, d := range res.Deltas {
			base := vs[slices.Index([]string{vk(0), vk(1), vk(2)}, d.Base)]
			it := ds["delta-"+d.Base]
			if !d.Listed || d.BaseFingerprint != base.Image.Fingerprint || d.Size <= 0 || d.Size > vs[i].Image.Root.Size/10 ||
				it.FType != catalog.FTypeSquashfsDelta || it.DeltaBase != d.Base || it.Path != d.Path {
				t.Fatalf("version %d delta %+v, item %+v", i, d, it)
			}
			if f := res.Files[2+j]; f.Path != d.Path || !f.Uploaded {
				t.Errorf("file %d = %+v, want delta %s uploaded", 2+j, f, d.Path)
			}
			// The stored delta turns the stored base root into the root.
			_, baseRoot := catalog.ImagePaths(base.Image.Fingerprint, catalog.RootSquashfs)
			if err := delta.Check(ctx, storedFile(t, fs.Store, baseRoot), storedFile(t, fs.Store, it.Path), vs[i].Image.Root.SHA256); err != nil {
				t.Fatal(err)
			}
		}
	}
	if rep := s.verifyWith(VerifyOptions{Deep: true}); !rep.OK() || rep.DeltasDecoded != 5 {
		t.Fatalf("deep verify = %+v; want OK with 5 deltas decoded", rep)
	}
	// Republishing: nothing to do, no delta work.
	if res := mustPublish(t, r, vs[3]); res.Changed || res.Deltas != nil {
		t.Errorf("republish = %+v", res)
	}
}

func TestPublishNoDelta(t *testing.T) {
	s := newScene(t)
	vs := updates(t, 2)
	mustPublish(t, s.r, vs[0])
	vs[1].DeltaDepth = 0
	if res := mustPublish(t, s.r, vs[1]); res.Deltas != nil || len(res.Files) != 2 {
		t.Errorf("--no-delta publish = %+v", res)
	}
	if ds := deltaItems(t, s.r, vk(1)); len(ds) != 0 {
		t.Errorf("delta items = %+v", ds)
	}
}

// A delta larger than half the root is made, found too big, and left
// out with a note: nothing stored, nothing listed; the other deltas of
// the version are published.
func TestPublishLeavesOutADeltaLargerThanHalfTheRoot(t *testing.T) {
	deltatest.Require(t)
	s := newScene(t)
	unrelated := makeImage(t, "nginx", t0, 99) // nothing in common with the updates
	vs := withDepth(updates(t, 3)[1:], 2)
	mustPublish(t, s.r, unrelated)
	mustPublish(t, s.r, vs[0])
	res := mustPublish(t, s.r, vs[1])
	if got := deltaBases(res); !slices.Equal(got, []string{vk(1), vk(0)}) {
		t.Fatalf("deltas from %v", got)
	}
	near, far := res.Deltas[0], res.Deltas[1]
	if !near.Listed || far.Listed || far.Path != "" || !strings.Contains(far.Note, "more than half the root") {
		t.Errorf("deltas %+v, want the one from %s listed, the one from %s left out", res.Deltas, vk(1), vk(0))
	}
	if ds := deltaItems(t, s.r, vk(2)); len(ds) != 1 || ds["delta-"+vk(1)].Path != near.Path || len(res.Files) != 3 {
		t.Errorf("delta items %+v, files %+v", ds, res.Files)
	}
	if rep := s.verifyWith(VerifyOptions{Deep: true}); !rep.OK() || len(rep.Orphans) != 0 || rep.DeltasDecoded != 1 {
		t.Errorf("deep verify = %+v", rep)
	}
}

// Without xdelta3 a publish that needs a delta fails with one line and
// changes nothing; NoDelta publishes without one.
func TestPublishWithoutXdelta3(t *testing.T) {
	s := newScene(t)
	vs := updates(t, 2)
	v1, v2 := vs[0], vs[1]
	v1.DeltaDepth = 0
	mustPublish(t, s.r, v1)
	unchanged := s.frozen()
	t.Setenv("PATH", t.TempDir())
	_, err := s.r.Publish(s.ctx, v2)
	if !errors.Is(err, delta.ErrNoXdelta3) || !strings.Contains(err.Error(), "--no-delta") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line: xdelta3 missing, --no-delta", err)
	}
	unchanged("a refused publish")
	v2.DeltaDepth = 0
	if res := mustPublish(t, s.r, v2); res.Deltas != nil {
		t.Errorf("a publish with DeltaDepth 0 made deltas: %+v", res.Deltas)
	}
	mustVerify(t, s.r)
}

// fakeXdelta3 puts an xdelta3 on PATH that encodes with the real one and
// then corrupts the delta.
func fakeXdelta3(t *testing.T) {
	t.Helper()
	t.Setenv("PATH", deltatest.CorruptingXdelta3Dir(t)+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestCorruptDeltaIsNeverPublished(t *testing.T) {
	s, vs := newDeltaScene(t, 2)
	unchanged := s.frozen()
	fakeXdelta3(t)
	_, err := s.r.Publish(s.ctx, vs[1])
	if !errors.Is(err, delta.ErrMismatch) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line: the delta does not reproduce the root", err)
	}
	unchanged("a publish with a corrupt delta")
}

// A base version leaves the catalog while the publish uploads: the
// version is committed without the delta from it (a delta whose base left
// is never listed), with its other delta, and the registry verifies.
func TestDeltaWhoseBaseLeftIsNotListed(t *testing.T) {
	s, vs := newDeltaScene(t, 3)
	ctx, r, fs := s.ctx, s.r, s.fs
	vs = withDepth(vs, 2)
	mustPublish(t, r, vs[1])
	removed := false
	fs.beforePut = func(key string, opts store.PutOptions) error {
		if strings.HasSuffix(key, ".vcdiff") && !removed {
			removed = true
			other := &Registry{Store: fs.Store, BackoffBase: time.Millisecond}
			if _, err := other.Remove(ctx, vs[0].Image.Fingerprint, RemoveOptions{}); err != nil {
				t.Error(err)
			}
		}
		return nil
	}
	res := mustPublish(t, r, vs[2])
	if !removed || len(res.Deltas) != 2 || !res.Deltas[0].Listed || res.Deltas[1].Listed || !strings.Contains(res.Deltas[1].Note, "left the catalog") {
		t.Fatalf("deltas = %+v (base removed: %v), want the one from %s listed, the one from %s not", res.Deltas, removed, vk(1), vk(0))
	}
	if ds := deltaItems(t, r, vk(2)); len(ds) != 1 || ds["delta-"+vk(1)].Path == "" {
		t.Errorf("delta items %+v, want only the one from %s", ds, vk(1))
	}
	mustVerify(t, r)
}

// A publisher making a delta, killed at any instant (every store operation
// after the n-th fails: between the delta upload and the commit among
// them), leaves a registry that verifies, and the next publish succeeds.
func TestKilledAtAnyInstantWithADelta(t *testing.T) {
	deltatest.Require(t)
	vs := withDepth(updates(t, 3), 2) // the last publish makes two deltas
	sawDeltaUploadedNotCommitted := false
	n := killedAtEveryInstant(t, vs[0], vs[1], vs[2], func(rep *VerifyReport) {
		for _, o := range rep.Orphans {
			if strings.HasSuffix(o.Path, ".vcdiff") && strings.HasPrefix(o.Reason, "pending") {
				sawDeltaUploadedNotCommitted = true
			}
		}
	})
	if !sawDeltaUploadedNotCommitted {
		t.Error("no kill fell between the delta upload and the commit")
	}
	t.Logf("killed at each of the first %d store operations of a publish with a delta: registry valid every time", n)
}

// Prune with --keep 2 drops the oldest version and the deltas whose base
// it was (one in each newer version); the newest version's delta from the
// version kept stays.
func TestPruneDeletesDeltasWhoseBaseLeft(t *testing.T) {
	s, vs := newDeltaScene(t, 3)
	vs = withDepth(vs, 2)
	d2 := mustPublish(t, s.r, vs[1]).Deltas[0].Path
	res3 := mustPublish(t, s.r, vs[2])
	d3from2, d3from1 := res3.Deltas[0].Path, res3.Deltas[1].Path
	res := s.prune(PruneOptions{Keep: 2, Grace: 0})
	want := append(vs[0].Image.Paths(), d2, d3from1)
	if !sameSet(res.Deleted, want) {
		t.Errorf("deleted %v, want %v", res.Deleted, want)
	}
	if !s.stored(d3from2) {
		t.Errorf("the delta from the version kept was deleted")
	}
	if rep := s.verifyWith(VerifyOptions{Deep: true}); !rep.OK() || rep.DeltasDecoded != 1 {
		t.Fatalf("deep verify after prune = %+v", rep)
	}
}

// Verify checks a delta's hash; --deep finds a delta whose file matches
// the catalog but does not decode to the version's root.
func TestVerifyDeepFindsAWrongDelta(t *testing.T) {
	s, vs := newDeltaScene(t, 2)
	ctx, r, fs := s.ctx, s.r, s.fs
	v1 := vs[0]
	d := mustPublish(t, r, vs[1]).Deltas[0].Path
	item := deltaItems(t, r, vk(1))["delta-"+vk(0)]
	// Damage: the file's bytes → the plain verify finds it.
	bad := []byte(storeContents(t, fs.Store)[d])
	bad[len(bad)/2] ^= 1
	s.replace(d, bad)
	if rep := s.verifyWith(VerifyOptions{}); rep.OK() || !strings.Contains(problems(rep), d+" has sha256") {
		t.Errorf("verify of a damaged delta = %q", rep.Problems)
	}
	// A delta whose hash is right but that encodes v1 → v1: only --deep
	// finds it.
	dir := t.TempDir()
	_, v1RootKey := catalog.ImagePaths(v1.Image.Fingerprint, catalog.RootSquashfs)
	v1Root := storedFile(t, fs.Store, v1RootKey)
	wrong, err := delta.Make(ctx, v1Root, v1Root, filepath.Join(dir, "wrong"), v1.Image.Root.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(wrong.Path)
	s.replace(d, data)
	rewriteCatalog(t, fs.Store, func(s string) string {
		s = strings.Replace(s, `"sha256": "`+item.SHA256+`",
              "size": `+strconv.FormatInt(item.Size, 10), `"sha256": "`+wrong.SHA256+`",
              "size": `+strconv.Itoa(len(data)), 1)
		return s
	})
	if rep := mustVerify(t, r); rep.DeltasDecoded != 0 {
		t.Errorf("plain verify decoded deltas")
	}
	if rep := s.verifyWith(VerifyOptions{Deep: true}); rep.OK() || !strings.Contains(problems(rep), "not the root") {
		t.Errorf("deep verify = %+v; want the wrong delta named", rep)
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// A dry run says which delta the publish would make, without encoding or
// writing anything; it needs xdelta3 like the real publish.
func TestPublishDryRunPlansTheDelta(t *testing.T) {
	s, vs := newDeltaScene(t, 2)
	unchanged := s.frozen()
	v2 := vs[1]
	v2.DryRun = true
	res := mustPublish(t, s.r, v2)
	if ds := res.Deltas; len(ds) != 1 || ds[0].Base != vk(0) || ds[0].Listed || ds[0].Path != "" {
		t.Errorf("dry-run deltas = %+v, want one planned from %s", ds, vk(0))
	}
	unchanged("the dry run")
	t.Setenv("PATH", t.TempDir())
	if _, err := s.r.Publish(s.ctx, v2); !errors.Is(err, delta.ErrNoXdelta3) {
		t.Errorf("dry run without xdelta3 = %v, want ErrNoXdelta3", err)
	}
}
