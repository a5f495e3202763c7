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

func TestPublishMakesADeltaFromThePreviousVersionOnly(t *testing.T) {
	deltatest.Require(t)
	s := newScene(t)
	ctx, r, fs := s.ctx, s.r, s.fs
	vs := updates(t, 3)
	v1, v2, v3 := vs[0], vs[1], vs[2]
	if res := mustPublish(t, r, v1); res.Delta != nil {
		t.Errorf("first version has a delta: %+v", res.Delta)
	}
	res := mustPublish(t, r, v2)
	k1, k2, k3 := vk(0), vk(1), vk(2)
	if d := res.Delta; d == nil || !d.Listed || d.Base != k1 || d.BaseFingerprint != v1.Image.Fingerprint || d.Size <= 0 || d.Size > v2.Image.Root.Size/10 {
		t.Fatalf("second publish delta = %+v, want a listed delta from %s, under a tenth of the root", res.Delta, k1)
	}
	if len(res.Files) != 3 || res.Files[2].Path != res.Delta.Path || !res.Files[2].Uploaded {
		t.Errorf("files = %+v, want the delta uploaded last", res.Files)
	}
	ds := deltaItems(t, r, k2)
	it, ok := ds["delta-"+k1]
	if len(ds) != 1 || !ok || it.FType != catalog.FTypeSquashfsDelta || it.DeltaBase != k1 || it.Path != res.Delta.Path {
		t.Fatalf("version %s delta items = %+v", k2, ds)
	}
	// The stored delta turns the stored v1 root into v2's root.
	_, v1Root := catalog.ImagePaths(v1.Image.Fingerprint, catalog.RootSquashfs)
	if err := delta.Check(ctx, storedFile(t, fs.Store, v1Root), storedFile(t, fs.Store, it.Path), v2.Image.Root.SHA256); err != nil {
		t.Fatal(err)
	}
	// v3: a delta from v2 only.
	res = mustPublish(t, r, v3)
	if ds := deltaItems(t, r, k3); len(ds) != 1 || ds["delta-"+k2].DeltaBase != k2 {
		t.Fatalf("version %s delta items = %+v, want one from %s", k3, ds, k2)
	}
	if rep := s.verifyWith(VerifyOptions{Deep: true}); !rep.OK() || rep.DeltasDecoded != 2 {
		t.Fatalf("deep verify = %+v; want OK with 2 deltas decoded", rep)
	}
	// Republishing v3: nothing to do, no delta work.
	if res := mustPublish(t, r, v3); res.Changed || res.Delta != nil {
		t.Errorf("republish = %+v", res)
	}
}

func TestPublishNoDelta(t *testing.T) {
	s := newScene(t)
	vs := updates(t, 2)
	mustPublish(t, s.r, vs[0])
	vs[1].NoDelta = true
	if res := mustPublish(t, s.r, vs[1]); res.Delta != nil || len(res.Files) != 2 {
		t.Errorf("--no-delta publish = %+v", res)
	}
	if ds := deltaItems(t, s.r, vk(1)); len(ds) != 0 {
		t.Errorf("delta items = %+v", ds)
	}
}

// Without xdelta3 a publish that needs a delta fails with one line and
// changes nothing; NoDelta publishes without one.
func TestPublishWithoutXdelta3(t *testing.T) {
	s := newScene(t)
	vs := updates(t, 2)
	v1, v2 := vs[0], vs[1]
	v1.NoDelta = true
	mustPublish(t, s.r, v1)
	unchanged := s.frozen()
	t.Setenv("PATH", t.TempDir())
	_, err := s.r.Publish(s.ctx, v2)
	if !errors.Is(err, delta.ErrNoXdelta3) || !strings.Contains(err.Error(), "--no-delta") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line: xdelta3 missing, --no-delta", err)
	}
	unchanged("a refused publish")
	v2.NoDelta = true
	if res := mustPublish(t, s.r, v2); res.Delta != nil {
		t.Errorf("NoDelta publish made a delta: %+v", res.Delta)
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

// The base version leaves the catalog while the publish uploads: the
// version is committed without its delta (a delta whose base left is never
// listed), and the registry verifies.
func TestDeltaWhoseBaseLeftIsNotListed(t *testing.T) {
	s, vs := newDeltaScene(t, 2)
	ctx, r, fs := s.ctx, s.r, s.fs
	v1, v2 := vs[0], vs[1]
	removed := false
	fs.beforePut = func(key string, opts store.PutOptions) error {
		if strings.HasSuffix(key, ".vcdiff") && !removed {
			removed = true
			other := &Registry{Store: fs.Store, BackoffBase: time.Millisecond}
			if _, err := other.Remove(ctx, v1.Image.Fingerprint, RemoveOptions{}); err != nil {
				t.Error(err)
			}
		}
		return nil
	}
	res := mustPublish(t, r, v2)
	if !removed || res.Delta == nil || res.Delta.Listed || !strings.Contains(res.Delta.Note, "left the catalog") {
		t.Fatalf("delta = %+v (base removed: %v), want not listed", res.Delta, removed)
	}
	if ds := deltaItems(t, r, vk(1)); len(ds) != 0 {
		t.Errorf("a delta whose base left is listed: %+v", ds)
	}
	mustVerify(t, r)
}

// A publisher making a delta, killed at any instant (every store operation
// after the n-th fails: between the delta upload and the commit among
// them), leaves a registry that verifies, and the next publish succeeds.
func TestKilledAtAnyInstantWithADelta(t *testing.T) {
	deltatest.Require(t)
	vs := updates(t, 3)
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

// Prune with --keep 2 drops the oldest version and the delta whose base
// it was; the newest version's delta stays.
func TestPruneDeletesDeltasWhoseBaseLeft(t *testing.T) {
	s, vs := newDeltaScene(t, 3)
	d2 := mustPublish(t, s.r, vs[1]).Delta.Path
	d3 := mustPublish(t, s.r, vs[2]).Delta.Path
	res := s.prune(PruneOptions{Keep: 2, Grace: 0})
	want := append(vs[0].Image.Paths(), d2)
	if !sameSet(res.Deleted, want) {
		t.Errorf("deleted %v, want %v", res.Deleted, want)
	}
	if !s.stored(d3) {
		t.Errorf("the newest delta was deleted")
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
	d := mustPublish(t, r, vs[1]).Delta.Path
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
	if d := res.Delta; d == nil || d.Base != vk(0) || d.Listed || d.Path != "" {
		t.Errorf("dry-run delta = %+v, want planned from %s", res.Delta, vk(0))
	}
	unchanged("the dry run")
	t.Setenv("PATH", t.TempDir())
	if _, err := s.r.Publish(s.ctx, v2); !errors.Is(err, delta.ErrNoXdelta3) {
		t.Errorf("dry run without xdelta3 = %v, want ErrNoXdelta3", err)
	}
}
