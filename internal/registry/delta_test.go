package registry

import (
	"bytes"
	"context"
	"errors"
	"maps"
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
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
	"github.com/incus-appliance/registry/internal/store"
)

// makeUpdate returns a new version of prev's appliance created at
// created: prev's root with a few bytes changed (as a rebuild with one
// changed file), so the delta between them is small.
func makeUpdate(t testing.TB, prev PublishRequest, created time.Time, change string) PublishRequest {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(prev.RootPath)
	if err != nil {
		t.Fatal(err)
	}
	copy(data[len(data)/2:], change)
	root := filepath.Join(dir, "rootfs.squashfs")
	if err := os.WriteFile(root, data, 0o644); err != nil {
		t.Fatal(err)
	}
	meta := imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec(prev.Image.Name, created))
	im, err := image.Inspect(context.Background(), meta, root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return PublishRequest{Image: im.CatalogImage(prev.Image.Name, nil, nil), MetadataPath: meta, RootPath: root}
}

// storedFile copies a stored object into a local file.
func storedFile(t testing.TB, s store.Store, key string) string {
	t.Helper()
	contents := storeContents(t, s)
	data, ok := contents[key]
	if !ok {
		t.Fatalf("%s is not stored", key)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(key))
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// deltaItems returns version vk's delta items.
func deltaItems(t testing.TB, r *Registry, vk string) map[string]catalog.Item {
	t.Helper()
	v := readCatalog(t, r).Products["nginx:amd64"].Versions[vk]
	if v == nil {
		t.Fatalf("no version %s", vk)
	}
	return v.Deltas()
}

func TestPublishMakesADeltaFromThePreviousVersionOnly(t *testing.T) {
	deltatest.Require(t)
	ctx := context.Background()
	r, fs := newTestRegistry()
	v1 := makeImage(t, "nginx", t0, 1)
	v2 := makeUpdate(t, v1, t0.Add(time.Hour), "changed")
	v3 := makeUpdate(t, v2, t0.Add(2*time.Hour), "changed again")
	if res := mustPublish(t, r, v1); res.Delta != nil {
		t.Errorf("first version has a delta: %+v", res.Delta)
	}
	res := mustPublish(t, r, v2)
	k1, k2, k3 := catalog.VersionKey(t0), catalog.VersionKey(t0.Add(time.Hour)), catalog.VersionKey(t0.Add(2*time.Hour))
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
	rep, err := r.VerifyWith(ctx, VerifyOptions{Deep: true})
	if err != nil || !rep.OK() || rep.DeltasDecoded != 2 {
		t.Fatalf("deep verify = %+v, %v; want OK with 2 deltas decoded", rep, err)
	}
	// Republishing v3: nothing to do, no delta work.
	if res := mustPublish(t, r, v3); res.Changed || res.Delta != nil {
		t.Errorf("republish = %+v", res)
	}
}

func TestPublishNoDelta(t *testing.T) {
	r, _ := newTestRegistry()
	v1 := makeImage(t, "nginx", t0, 1)
	mustPublish(t, r, v1)
	v2 := makeUpdate(t, v1, t0.Add(time.Hour), "x")
	v2.NoDelta = true
	if res := mustPublish(t, r, v2); res.Delta != nil || len(res.Files) != 2 {
		t.Errorf("--no-delta publish = %+v", res)
	}
	if ds := deltaItems(t, r, catalog.VersionKey(t0.Add(time.Hour))); len(ds) != 0 {
		t.Errorf("delta items = %+v", ds)
	}
}

// Without xdelta3 a publish that needs a delta fails with one line and
// changes nothing; NoDelta publishes without one.
func TestPublishWithoutXdelta3(t *testing.T) {
	r, fs := newTestRegistry()
	v1 := makeImage(t, "nginx", t0, 1)
	v1.NoDelta = true
	mustPublish(t, r, v1)
	v2 := makeUpdate(t, v1, t0.Add(time.Hour), "x")
	before := storeContents(t, fs.Store)
	t.Setenv("PATH", t.TempDir())
	_, err := r.Publish(context.Background(), v2)
	if !errors.Is(err, delta.ErrNoXdelta3) || !strings.Contains(err.Error(), "--no-delta") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line: xdelta3 missing, --no-delta", err)
	}
	if !maps.Equal(before, storeContents(t, fs.Store)) {
		t.Error("a refused publish changed the store")
	}
	v2.NoDelta = true
	if res := mustPublish(t, r, v2); res.Delta != nil {
		t.Errorf("NoDelta publish made a delta: %+v", res.Delta)
	}
	mustVerify(t, r)
}

// fakeXdelta3 puts an xdelta3 on PATH that encodes with the real one and
// then corrupts the delta.
func fakeXdelta3(t *testing.T) {
	t.Helper()
	t.Setenv("PATH", deltatest.CorruptingXdelta3Dir(t)+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestCorruptDeltaIsNeverPublished(t *testing.T) {
	deltatest.Require(t)
	r, fs := newTestRegistry()
	v1 := makeImage(t, "nginx", t0, 1)
	mustPublish(t, r, v1)
	before := storeContents(t, fs.Store)
	fakeXdelta3(t)
	_, err := r.Publish(context.Background(), makeUpdate(t, v1, t0.Add(time.Hour), "x"))
	if !errors.Is(err, delta.ErrMismatch) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line: the delta does not reproduce the root", err)
	}
	if !maps.Equal(before, storeContents(t, fs.Store)) {
		t.Error("a publish with a corrupt delta changed the store")
	}
}

// The base version leaves the catalog while the publish uploads: the
// version is committed without its delta (a delta whose base left is never
// listed), and the registry verifies.
func TestDeltaWhoseBaseLeftIsNotListed(t *testing.T) {
	deltatest.Require(t)
	ctx := context.Background()
	r, fs := newTestRegistry()
	v1 := makeImage(t, "nginx", t0, 1)
	mustPublish(t, r, v1)
	v2 := makeUpdate(t, v1, t0.Add(time.Hour), "x")
	removed := false
	fs.beforePut = func(key string, opts store.PutOptions) error {
		if strings.HasSuffix(key, ".vcdiff") && !removed {
			removed = true
			other := &Registry{Store: fs.Store, BackoffBase: time.Millisecond}
			if _, err := other.Remove(ctx, v1.Image.Fingerprint, "", false); err != nil {
				t.Error(err)
			}
		}
		return nil
	}
	res := mustPublish(t, r, v2)
	if !removed || res.Delta == nil || res.Delta.Listed || !strings.Contains(res.Delta.Note, "left the catalog") {
		t.Fatalf("delta = %+v (base removed: %v), want not listed", res.Delta, removed)
	}
	if ds := deltaItems(t, r, catalog.VersionKey(t0.Add(time.Hour))); len(ds) != 0 {
		t.Errorf("a delta whose base left is listed: %+v", ds)
	}
	mustVerify(t, r)
}

// A publisher making a delta, killed at any instant (every store operation
// after the n-th fails: between the delta upload and the commit among
// them), leaves a registry that verifies, and the next publish succeeds.
func TestKilledAtAnyInstantWithADelta(t *testing.T) {
	deltatest.Require(t)
	v1 := makeImage(t, "nginx", t0, 1)
	v2 := makeUpdate(t, v1, t0.Add(time.Hour), "x")
	v3 := makeUpdate(t, v2, t0.Add(2*time.Hour), "y")
	sawDeltaUploadedNotCommitted := false
	for n := int64(1); ; n++ {
		r, fs := newTestRegistry()
		mustPublish(t, r, v1)
		fs.ops.Store(0)
		fs.failAfter.Store(n)
		_, err := r.Publish(context.Background(), v2)
		fs.failAfter.Store(0)
		rep := mustVerify(t, r)
		for _, o := range rep.Orphans {
			if strings.HasSuffix(o.Path, ".vcdiff") && strings.HasPrefix(o.Reason, "pending") {
				sawDeltaUploadedNotCommitted = true
			}
		}
		mustPublish(t, r, v3)
		mustVerify(t, r)
		if err == nil {
			if !sawDeltaUploadedNotCommitted {
				t.Error("no kill fell between the delta upload and the commit")
			}
			t.Logf("killed at each of the first %d store operations of a publish with a delta: registry valid every time", n-1)
			return
		}
		if !errors.Is(err, errKilled) {
			t.Fatalf("kill after %d ops: unexpected error %v", n, err)
		}
	}
}

// Prune with --keep 2 drops the oldest version and the delta whose base
// it was; the newest version's delta stays.
func TestPruneDeletesDeltasWhoseBaseLeft(t *testing.T) {
	deltatest.Require(t)
	ctx := context.Background()
	r, fs := newTestRegistry()
	v1 := makeImage(t, "nginx", t0, 1)
	v2 := makeUpdate(t, v1, t0.Add(time.Hour), "x")
	v3 := makeUpdate(t, v2, t0.Add(2*time.Hour), "y")
	mustPublish(t, r, v1)
	d2 := mustPublish(t, r, v2).Delta.Path
	d3 := mustPublish(t, r, v3).Delta.Path
	res, err := r.Prune(ctx, PruneOptions{Keep: 2, Grace: 0})
	if err != nil {
		t.Fatal(err)
	}
	want := append(v1.Image.Paths(), d2)
	if !sameSet(res.Deleted, want) {
		t.Errorf("deleted %v, want %v", res.Deleted, want)
	}
	if _, err := fs.Store.Stat(ctx, d3); err != nil {
		t.Errorf("the newest delta was deleted: %v", err)
	}
	if rep, err := r.VerifyWith(ctx, VerifyOptions{Deep: true}); err != nil || !rep.OK() || rep.DeltasDecoded != 1 {
		t.Fatalf("deep verify after prune = %+v, %v", rep, err)
	}
}

// Verify checks a delta's hash; --deep finds a delta whose file matches
// the catalog but does not decode to the version's root.
func TestVerifyDeepFindsAWrongDelta(t *testing.T) {
	deltatest.Require(t)
	ctx := context.Background()
	r, fs := newTestRegistry()
	v1 := makeImage(t, "nginx", t0, 1)
	v2 := makeUpdate(t, v1, t0.Add(time.Hour), "x")
	mustPublish(t, r, v1)
	d := mustPublish(t, r, v2).Delta.Path
	item := deltaItems(t, r, catalog.VersionKey(t0.Add(time.Hour)))["delta-"+catalog.VersionKey(t0)]
	// Damage: the file's bytes → the plain verify finds it.
	good := storeContents(t, fs.Store)[d]
	bad := []byte(good)
	bad[len(bad)/2] ^= 1
	if err := fs.Store.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Store.Put(ctx, d, bytes.NewReader(bad), int64(len(bad)), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if rep, _ := r.Verify(ctx); rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), d+" has sha256") {
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
	fs.Store.Delete(ctx, d)
	if _, err := fs.Store.Put(ctx, d, bytes.NewReader(data), int64(len(data)), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rewriteCatalog(t, fs.Store, func(s string) string {
		s = strings.Replace(s, `"sha256": "`+item.SHA256+`",
              "size": `+strconv.FormatInt(item.Size, 10), `"sha256": "`+wrong.SHA256+`",
              "size": `+strconv.Itoa(len(data)), 1)
		return s
	})
	if rep := mustVerify(t, r); rep.DeltasDecoded != 0 {
		t.Errorf("plain verify decoded deltas")
	}
	rep, err := r.VerifyWith(ctx, VerifyOptions{Deep: true})
	if err != nil || rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "not the root") {
		t.Errorf("deep verify = %+v, %v; want the wrong delta named", rep, err)
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// A dry run says which delta the publish would make, without encoding or
// writing anything; it needs xdelta3 like the real publish.
func TestPublishDryRunPlansTheDelta(t *testing.T) {
	deltatest.Require(t)
	r, fs := newTestRegistry()
	v1 := makeImage(t, "nginx", t0, 1)
	mustPublish(t, r, v1)
	before := storeContents(t, fs.Store)
	v2 := makeUpdate(t, v1, t0.Add(time.Hour), "x")
	v2.DryRun = true
	res := mustPublish(t, r, v2)
	if d := res.Delta; d == nil || d.Base != catalog.VersionKey(t0) || d.Listed || d.Path != "" {
		t.Errorf("dry-run delta = %+v, want planned from %s", res.Delta, catalog.VersionKey(t0))
	}
	if !maps.Equal(before, storeContents(t, fs.Store)) {
		t.Error("dry run changed the store")
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := r.Publish(context.Background(), v2); !errors.Is(err, delta.ErrNoXdelta3) {
		t.Errorf("dry run without xdelta3 = %v, want ErrNoXdelta3", err)
	}
}
