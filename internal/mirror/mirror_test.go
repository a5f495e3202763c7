package mirror

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/simplestreams"
	"github.com/incus-appliance/registry/internal/simplestreams/sstest"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/memstore"
)

var ctx = context.Background()

// memSource is a source tree in memory; hook, when set, replaces a file's
// reader (fault injection).
type memSource struct {
	files map[string][]byte
	hook  func(path string, r io.Reader) io.Reader
}

func (m *memSource) String() string { return "mem" }

func (m *memSource) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	b, ok := m.files[path]
	if !ok {
		return nil, simplestreams.ErrNotFound
	}
	var r io.Reader = bytes.NewReader(b)
	if m.hook != nil {
		r = m.hook(path, r)
	}
	return io.NopCloser(r), nil
}

func newSource(products, versions int) (*memSource, *sstest.Tree) {
	t := sstest.Build(sstest.Spec{Products: products, Versions: versions, FileSize: 300})
	return &memSource{files: t.Files}, t
}

func newRegistry() (*registry.Registry, store.Store) {
	s := memstore.New()
	return &registry.Registry{Store: s, BackoffBase: time.Millisecond, Shards: testShards}, s
}

func mustVerify(t *testing.T, r *registry.Registry) *registry.VerifyReport {
	t.Helper()
	rep, err := r.Verify(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %q", err, rep.Problems)
	}
	return rep
}

// readCatalog returns the registry's whole catalog (every file of a
// sharded one).
// wantNothingStored fails the test unless the store is empty: what a
// refused mirror leaves.
func wantNothingStored(t *testing.T, s store.Store) {
	t.Helper()
	if objs, _ := s.List(ctx, ""); len(objs) != 0 {
		t.Errorf("a refused mirror wrote %d objects", len(objs))
	}
}

func readCatalog(t *testing.T, s store.Store) *catalog.Catalog {
	t.Helper()
	read := func(key string) *catalog.Catalog {
		rc, _, err := s.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) && key != catalog.ImagesPath {
			return catalog.New()
		}
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		c, err := catalog.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	root := read(catalog.ImagesPath)
	var files []*catalog.Catalog
	for _, key := range root.Layout().Files() {
		files = append(files, read(key))
	}
	return root.Layout().Whole(root, files)
}

// An images.linuxcontainers.org-shaped tree (':' in version keys and paths,
// root.tar.xz, disk-kvm.img, squashfs.vcdiff deltas, lxd_combined.tar.gz,
// requirements) is copied whole: the catalog lists the same versions and
// items, every file is there, verify is clean; a second run sends 0 bytes.
func TestMirrorWholeTreeThenIncremental(t *testing.T) {
	src, tree := newSource(6, 3)
	r, s := newRegistry()
	rep, err := Run(ctx, src, r, Options{})
	if err != nil || len(rep.Failed) != 0 {
		t.Fatalf("mirror = %+v, %v", rep, err)
	}
	if rep.Versions != 18 || rep.Copied != 18 || rep.Files != len(tree.Files)-2 {
		t.Errorf("report = %+v, want 18 versions copied and %d files", rep, len(tree.Files)-2)
	}
	got := readCatalog(t, s)
	for pk, p := range tree.Catalog.Products {
		gp := got.Products[pk]
		if gp == nil || len(gp.Versions) != len(p.Versions) || gp.Aliases != p.Aliases || gp.Requirements["secureboot"] != p.Requirements["secureboot"] {
			t.Fatalf("product %s: got %+v, want %+v", pk, gp, p)
		}
		for vk, v := range p.Versions {
			if len(gp.Versions[vk].Items) != len(v.Items) {
				t.Errorf("%s %s: %d items, want %d", pk, vk, len(gp.Versions[vk].Items), len(v.Items))
			}
		}
	}
	mustVerify(t, r)

	rep, err = Run(ctx, src, r, Options{})
	if err != nil || rep.Files != 0 || rep.Bytes != 0 || rep.Unchanged != 18 {
		t.Fatalf("second mirror = %+v, %v; want 0 files, 0 bytes, 18 unchanged", rep, err)
	}
}

// Filters and --keep: the catalog written lists exactly what was copied,
// and deltas whose base was not copied are dropped.
func TestMirrorFilteredKeep(t *testing.T) {
	src, _ := newSource(20, 3)
	r, s := newRegistry()
	filters := []Filter{{"os", "debian"}, {"os", "alpine"}, {"arch", "amd64"}}
	rep, err := Run(ctx, src, r, Options{Filters: filters, Keep: 1})
	if err != nil || len(rep.Failed) != 0 {
		t.Fatalf("mirror = %+v, %v", rep, err)
	}
	c := readCatalog(t, s)
	if len(c.Products) != 2 || rep.Versions != 2 {
		t.Fatalf("products %v, versions %d; want debian and alpine on amd64, 1 version each", c.ProductKeys(), rep.Versions)
	}
	refs := c.Referenced()
	for pk, p := range c.Products {
		if p.Arch != "amd64" || (p.OS != "debian" && p.OS != "alpine") || len(p.Versions) != 1 {
			t.Errorf("product %s = %+v", pk, p)
		}
		for _, v := range p.Versions {
			for ik, it := range v.Items {
				if it.DeltaBase != "" {
					t.Errorf("%s: delta item %s kept although its base was not copied", pk, ik)
				}
			}
		}
	}
	objs, _ := s.List(ctx, "images/")
	for _, o := range objs {
		if !refs[o.Key] {
			t.Errorf("copied %s that the catalog does not list", o.Key)
		}
	}
	mustVerify(t, r)

	// --keep 2 later: the older version comes, and the newest gains its delta.
	rep, err = Run(ctx, src, r, Options{Filters: filters, Keep: 2})
	if err != nil || rep.Copied != 4 || len(rep.Failed) != 0 {
		t.Fatalf("mirror --keep 2 = %+v, %v", rep, err)
	}
	deltas := 0
	for _, p := range readCatalog(t, s).Products {
		for _, v := range p.Versions {
			for _, it := range v.Items {
				if it.DeltaBase != "" {
					deltas++
				}
			}
		}
	}
	if deltas != 2 {
		t.Errorf("deltas after --keep 2 = %d, want 2 (one per product)", deltas)
	}
	mustVerify(t, r)
}

// A wrong sha256 or a truncated file aborts that version alone, with a
// clear error; nothing of it is stored or listed; the rest is committed.
func TestMirrorBadFilesFailAlone(t *testing.T) {
	src, tree := newSource(3, 1)
	pks := tree.Catalog.ProductKeys()
	bad := map[string]string{}
	for i, pk := range pks[:2] {
		for _, v := range tree.Catalog.Products[pk].Versions {
			path := v.Items["squashfs"].Path
			if i == 0 {
				b := bytes.Clone(src.files[path])
				b[len(b)-1] ^= 0xff // same size, other bytes
				src.files[path] = b
				bad[pk] = "has sha256"
			} else {
				src.files[path] = src.files[path][:100]
				bad[pk] = "truncated: 100 of 300 bytes"
			}
		}
	}
	r, s := newRegistry()
	rep, err := Run(ctx, src, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != 2 || rep.Copied != 1 {
		t.Fatalf("report = %+v, want 2 failed, 1 copied", rep)
	}
	for _, f := range rep.Failed {
		if !strings.Contains(f.Error, bad[f.Product]) || strings.Contains(f.Error, "\n") {
			t.Errorf("%s failed with %q, want one line containing %q", f.Product, f.Error, bad[f.Product])
		}
	}
	c := readCatalog(t, s)
	if len(c.Products) != 1 || c.Products[pks[2]] == nil {
		t.Errorf("catalog products = %v, want only %s", c.ProductKeys(), pks[2])
	}
	for pk := range bad {
		for _, v := range tree.Catalog.Products[pk].Versions {
			if _, err := s.Stat(ctx, v.Items["squashfs"].Path); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the bad file of %s was stored: %v", pk, err)
			}
		}
	}
	mustVerify(t, r)
}

// A source catalog that is not JSON, or names a path with "..": one clear
// error, nothing written.
func TestMirrorBadCatalogWritesNothing(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(m *memSource)
		want string
	}{
		"not JSON": {func(m *memSource) { m.files[catalog.ImagesPath] = []byte("<html>gateway timeout</html>") }, "invalid JSON"},
		"dot-dot path": {func(m *memSource) {
			m.files[catalog.ImagesPath] = bytes.Replace(m.files[catalog.ImagesPath], []byte(`"path": "images/`), []byte(`"path": "images/../../etc/`), 1)
		}, `".."`},
		"no index": {func(m *memSource) { delete(m.files, catalog.IndexPath) }, "not found"},
	} {
		t.Run(name, func(t *testing.T) {
			src, _ := newSource(2, 1)
			tc.edit(src)
			r, s := newRegistry()
			_, err := Run(ctx, src, r, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("mirror error = %v, want one line containing %q", err, tc.want)
			}
			wantNothingStored(t, s)
		})
	}
}

// A source that stops sending: the read fails after the stall deadline
// with a clear error, and that version is not committed.
func TestMirrorStallingSource(t *testing.T) {
	src, tree := newSource(2, 1)
	stalled := tree.Catalog.Products[tree.Catalog.ProductKeys()[0]].Versions
	var stallPath string
	for _, v := range stalled {
		stallPath = v.Items["squashfs"].Path
	}
	block := make(chan struct{})
	defer close(block)
	src.hook = func(path string, r io.Reader) io.Reader {
		if path != stallPath {
			return r
		}
		return io.MultiReader(io.LimitReader(r, 10), readerFunc(func([]byte) (int, error) { <-block; return 0, io.EOF }))
	}
	r, s := newRegistry()
	rep, err := Run(ctx, simplestreams.Stalling(src, 200*time.Millisecond), r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0].Error, "stalled") || rep.Copied != 1 {
		t.Fatalf("report = %+v, want the stalled version failed, the other copied", rep)
	}
	if _, err := s.Stat(ctx, stallPath); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the stalled file was stored: %v", err)
	}
	mustVerify(t, r)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// The registry dies mid-mirror (every store call fails after N): a rerun
// completes, copies only what is missing, and verify is clean.
func TestMirrorResumes(t *testing.T) {
	src, tree := newSource(4, 2)
	for _, n := range []int64{3, 10, 25} {
		r, s := newRegistry()
		dying := &dyingStore{Store: s, after: n}
		_, err := Run(ctx, src, &registry.Registry{Store: dying, BackoffBase: time.Millisecond, Shards: testShards}, Options{})
		if err == nil {
			t.Fatalf("after %d calls: the killed mirror succeeded", n)
		}
		rep, err := Run(ctx, src, r, Options{})
		if err != nil || len(rep.Failed) != 0 || rep.Copied+rep.Unchanged != 8 {
			t.Fatalf("after %d calls: rerun = %+v, %v", n, rep, err)
		}
		if rep.Files+rep.Skipped != len(tree.Files)-2 {
			t.Errorf("after %d calls: %d sent + %d skipped, want %d files", n, rep.Files, rep.Skipped, len(tree.Files)-2)
		}
		mustVerify(t, r)
	}
}

// dyingStore fails every call after the first `after` (a process killed
// then); a sharded registry reads its catalog files concurrently.
type dyingStore struct {
	store.Store
	n     atomic.Int64
	after int64
}

func (d *dyingStore) tick() error {
	if d.n.Add(1) > d.after {
		return errors.New("killed")
	}
	return nil
}

func (d *dyingStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := d.tick(); err != nil {
		return store.ObjectInfo{}, err
	}
	return d.Store.Put(ctx, key, body, size, opts)
}

func (d *dyingStore) Get(ctx context.Context, key string) (io.ReadCloser, store.ObjectInfo, error) {
	if err := d.tick(); err != nil {
		return nil, store.ObjectInfo{}, err
	}
	return d.Store.Get(ctx, key)
}

// A product key or alias the registry already has for something else is a
// clear error for those versions.
func TestMirrorClashes(t *testing.T) {
	src, tree := newSource(2, 1)
	pks := tree.Catalog.ProductKeys()
	r, s := newRegistry()
	if _, err := Run(ctx, src, r, Options{}); err != nil {
		t.Fatal(err)
	}
	other := sstest.Build(sstest.Spec{Products: 2, Versions: 1, FileSize: 301})
	c := other.Catalog
	c.Products[pks[0]].OS = "other" // same key, another lineage
	p := c.Products[pks[1]]
	delete(c.Products, pks[1])
	c.Products["renamed"] = p // another key, same alias and arch
	other.Files[catalog.ImagesPath] = c.Marshal()
	other.Files[catalog.IndexPath] = catalog.BuildIndex(c.ProductKeys()).Marshal()
	rep, err := Run(ctx, &memSource{files: other.Files}, r, Options{})
	if err != nil || len(rep.Failed) != 2 {
		t.Fatalf("mirror = %+v, %v", rep, err)
	}
	msgs := rep.Failed[0].Error + "\n" + rep.Failed[1].Error
	if !strings.Contains(msgs, "product key clash") || !strings.Contains(msgs, "alias clash") {
		t.Errorf("failures = %q, want a product-key clash and an alias clash", msgs)
	}
	_ = s
	mustVerify(t, r)
}

// --dry-run reports what would be copied and writes nothing.
func TestMirrorDryRun(t *testing.T) {
	src, tree := newSource(3, 2)
	r, s := newRegistry()
	rep, err := Run(ctx, src, r, Options{DryRun: true})
	if err != nil || rep.Copied != 6 || rep.Files != len(tree.Files)-2 || !rep.DryRun {
		t.Fatalf("dry run = %+v, %v", rep, err)
	}
	if objs, _ := s.List(ctx, ""); len(objs) != 0 {
		t.Errorf("a dry run wrote %d objects", len(objs))
	}
}
