package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/delta"
	"github.com/incus-appliance/registry/internal/delta/deltatest"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/memstore"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// makeImage writes a small valid split image and returns the request that
// publishes it as appliance name.
func makeImage(t testing.TB, name string, created time.Time, seed int64, aliases ...string) PublishRequest {
	t.Helper()
	dir := t.TempDir()
	meta := imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec(name, created))
	root := imagetest.WriteSquashfs(t, dir, 64<<10+int(seed%1000), seed)
	im, err := image.Inspect(context.Background(), meta, root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Deltas need xdelta3: without it (outside CI) the tests that are not
	// about deltas run without them; the delta tests fail or skip
	// (deltatest.Require).
	req := PublishRequest{Image: im.CatalogImage(name, aliases, nil), MetadataPath: meta, RootPath: root}
	if delta.Available() == nil {
		req.DeltaDepth = 1
	}
	return req
}

// faultStore wraps a store to count and intercept operations.
type faultStore struct {
	store.Store
	puts, putBytes, deletes atomic.Int64
	// beforePut runs before a Put reaches the store; a non-nil error is
	// returned instead.
	beforePut func(key string, opts store.PutOptions) error
	// inspectPut, when set, sees the body of each Put (read into memory)
	// before beforePut.
	inspectPut func(key string, body []byte, opts store.PutOptions)
	// afterPut runs after a Put reached the store, and may replace its
	// error (e.g. to lose the response of a write that landed).
	afterPut func(key string, opts store.PutOptions, err error) error
	// beforeDelete runs before a Delete.
	beforeDelete func(key string) error
	// failAfter, when > 0, makes every operation after that many fail
	// (a process killed at that instant).
	ops, failAfter atomic.Int64
	mu             sync.Mutex
}

var errKilled = &killedError{}

type killedError struct{}

func (*killedError) Error() string { return "killed" }

func (f *faultStore) tick() error {
	n := f.ops.Add(1)
	if fa := f.failAfter.Load(); fa > 0 && n > fa {
		return errKilled
	}
	return nil
}

func (f *faultStore) Get(ctx context.Context, key string) (io.ReadCloser, store.ObjectInfo, error) {
	if err := f.tick(); err != nil {
		return nil, store.ObjectInfo{}, err
	}
	return f.Store.Get(ctx, key)
}

func (f *faultStore) Stat(ctx context.Context, key string) (store.ObjectInfo, error) {
	if err := f.tick(); err != nil {
		return store.ObjectInfo{}, err
	}
	return f.Store.Stat(ctx, key)
}

func (f *faultStore) List(ctx context.Context, prefix string) ([]store.ObjectInfo, error) {
	if err := f.tick(); err != nil {
		return nil, err
	}
	return f.Store.List(ctx, prefix)
}

func (f *faultStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := f.tick(); err != nil {
		return store.ObjectInfo{}, err
	}
	if f.inspectPut != nil {
		data, err := io.ReadAll(body)
		if err != nil {
			return store.ObjectInfo{}, err
		}
		f.inspectPut(key, data, opts)
		body = bytes.NewReader(data)
	}
	if f.beforePut != nil {
		if err := f.beforePut(key, opts); err != nil {
			return store.ObjectInfo{}, err
		}
	}
	info, err := f.Store.Put(ctx, key, body, size, opts)
	if err == nil {
		f.puts.Add(1)
		f.putBytes.Add(size)
	}
	if f.afterPut != nil {
		err = f.afterPut(key, opts, err)
	}
	return info, err
}

func (f *faultStore) Delete(ctx context.Context, key string) error {
	if err := f.tick(); err != nil {
		return err
	}
	if f.beforeDelete != nil {
		if err := f.beforeDelete(key); err != nil {
			return err
		}
	}
	f.deletes.Add(1)
	return f.Store.Delete(ctx, key)
}

// scene is the set-up the tests share: a registry of testShards catalog
// files (or another count) on a fault-injecting store, with helpers for
// the steps the suite repeats (publish two versions, remove, prune,
// another tool's edit, verify) that fail the test on error.
type scene struct {
	t      testing.TB
	ctx    context.Context
	r      *Registry
	fs     *faultStore
	shards int
	// key, when set, is the key the scene's registries sign with.
	key *signingtest.Key
}

func newScene(t testing.TB) *scene { return newSceneOf(t, testShards) }

// newSceneOf is newScene for a registry created with shards catalog files.
func newSceneOf(t testing.TB, shards int) *scene {
	fs := &faultStore{Store: memstore.New()}
	s := &scene{t: t, ctx: context.Background(), fs: fs, shards: shards}
	s.r = s.another()
	return s
}

// another is a second publisher (its own Registry) on the same store.
func (s *scene) another() *Registry {
	r := &Registry{Store: s.fs, BackoffBase: time.Millisecond, Shards: s.shards}
	if s.key != nil {
		r.Signing = &Signing{Signer: s.key.Signer}
	}
	return r
}

// publish publishes appliance name created at created (file contents
// from seed) with aliases, and returns its request.
func (s *scene) publish(name string, created time.Time, seed int64, aliases ...string) PublishRequest {
	s.t.Helper()
	req := makeImage(s.t, name, created, seed, aliases...)
	mustPublish(s.t, s.r, req)
	return req
}

// twoVersions publishes nginx at t0 and, an hour later, an update of it
// (with a delta from it when xdelta3 is there).
func (s *scene) twoVersions() (old, newer PublishRequest) {
	s.t.Helper()
	old = s.publish("nginx", t0, 1)
	newer = makeUpdate(s.t, old, t0.Add(time.Hour), "changed")
	mustPublish(s.t, s.r, newer)
	return old, newer
}

// at sets the registry's clock (nil: the real one).
func (s *scene) at(now func() time.Time) { s.r.Now = now }

// remove, prune and verifyWith run a step, failing the test when it
// cannot run (verifyWith's report may still list problems).
func (s *scene) remove(target string) *RemoveResult {
	return succeeds[*RemoveResult](s, "remove "+target)(s.r.Remove(s.ctx, target, RemoveOptions{}))
}

func (s *scene) prune(opts PruneOptions) *PruneResult {
	return succeeds[*PruneResult](s, fmt.Sprintf("prune %+v", opts))(s.r.Prune(s.ctx, opts))
}

func (s *scene) verifyWith(opts VerifyOptions) *VerifyReport {
	return succeeds[*VerifyReport](s, fmt.Sprintf("verify %+v", opts))(s.r.VerifyWith(s.ctx, opts))
}

// succeeds returns a function that fails the test (what failed) when
// given an error, and returns the value it is given otherwise.
func succeeds[T any](s *scene, what string) func(T, error) T {
	return func(v T, err error) T {
		s.t.Helper()
		if err != nil {
			s.t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// frozen records the store's contents; the function it returns fails
// the test when they changed since (what: what ran meanwhile).
func (s *scene) frozen() func(what string) {
	s.t.Helper()
	before := storeContents(s.t, s.fs.Store)
	return func(what string) {
		s.t.Helper()
		if now := storeContents(s.t, s.fs.Store); !maps.Equal(before, now) {
			s.t.Errorf("%s changed the store: %d objects, had %d", what, len(now), len(before))
		}
	}
}

// stored reports whether the store holds key.
func (s *scene) stored(key string) bool {
	_, err := s.fs.Store.Stat(s.ctx, key)
	return err == nil
}

// replace stores data under key in place of what is there (damage).
func (s *scene) replace(key string, data []byte) {
	s.t.Helper()
	_ = s.fs.Store.Delete(s.ctx, key)
	if _, err := s.fs.Store.Put(s.ctx, key, bytes.NewReader(data), int64(len(data)), store.PutOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

// problems and warnings join a report's lines, to look for one.
func problems(rep *VerifyReport) string { return strings.Join(rep.Problems, "\n") }
func warnings(rep *VerifyReport) string { return strings.Join(rep.Warnings, "\n") }

// killedAtEveryInstant publishes next into a registry that first got
// base, killed at each instant in turn (every store operation after the
// n-th fails) until the publish completes. After each kill the registry
// verifies (check sees the report), then publishes after and verifies
// again. It returns how many instants were tried.
func killedAtEveryInstant(t *testing.T, base, next, after PublishRequest, check func(*VerifyReport)) int64 {
	t.Helper()
	for n := int64(1); ; n++ {
		s := newScene(t)
		mustPublish(t, s.r, base)
		s.fs.ops.Store(0)
		s.fs.failAfter.Store(n)
		_, err := s.r.Publish(s.ctx, next)
		s.fs.failAfter.Store(0)
		if rep := mustVerify(t, s.r); check != nil {
			check(rep)
		}
		mustPublish(t, s.r, after)
		mustVerify(t, s.r)
		if err == nil {
			return n - 1
		}
		if !errors.Is(err, errKilled) {
			t.Fatalf("kill after %d ops: unexpected error %v", n, err)
		}
	}
}

func mustPublish(t testing.TB, r *Registry, req PublishRequest) *PublishResult {
	t.Helper()
	res, err := r.Publish(context.Background(), req)
	if err != nil {
		t.Fatalf("publish %s: %v", req.Image.Name, err)
	}
	return res
}

// mustVerify fails the test unless the registry verifies clean.
func mustVerify(t testing.TB, r *Registry) *VerifyReport {
	t.Helper()
	rep, err := r.Verify(context.Background())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("verify found problems: %q", rep.Problems)
	}
	return rep
}

func readCatalog(t testing.TB, r *Registry) *catalog.Catalog {
	t.Helper()
	c, _, err := r.readCatalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// storeContents returns every object's content, to compare before and after.
func storeContents(t testing.TB, s store.Store) map[string]string {
	t.Helper()
	ctx := context.Background()
	objs, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range objs {
		rc, _, err := s.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out[o.Key] = string(b)
	}
	return out
}

// withVMDisk adds a VM disk (a qcow2 header padded with seed bytes) to
// req, sharing its metadata tarball.
func withVMDisk(t testing.TB, req PublishRequest, seed byte) PublishRequest {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "disk.qcow2")
	b := make([]byte, 64<<10)
	copy(b, "QFI\xfb\x00\x00\x00\x03")
	b[len(b)-1] = seed
	if err := os.WriteFile(disk, b, 0o644); err != nil {
		t.Fatal(err)
	}
	im, err := image.Inspect(context.Background(), req.MetadataPath, disk, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if im.RootKind != catalog.RootQCOW2 {
		t.Fatalf("disk inspected as %s", im.RootKind)
	}
	req.Image.VM = &catalog.VMDisk{Fingerprint: im.Fingerprint, Disk: catalog.FileRef{SHA256: im.Root.SHA256, Size: im.Root.Size}}
	req.VMDiskPath = disk
	return req
}

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
	return PublishRequest{Image: im.CatalogImage(prev.Image.Name, nil, nil), MetadataPath: meta, RootPath: root, DeltaDepth: max(prev.DeltaDepth, 1)}
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

// updates returns n versions of nginx an hour apart, each the previous
// one's root with a few bytes changed (so each new version gets a small
// delta from the one before), not yet published.
func updates(t testing.TB, n int) []PublishRequest {
	t.Helper()
	out := []PublishRequest{makeImage(t, "nginx", t0, 1)}
	for i := 1; i < n; i++ {
		out = append(out, makeUpdate(t, out[i-1], t0.Add(time.Duration(i)*time.Hour), strings.Repeat("changed ", i)))
	}
	return out
}

// newDeltaScene is a scene (xdelta3 required) holding the first of n
// updates; the others are not published yet.
func newDeltaScene(t *testing.T, n int) (*scene, []PublishRequest) {
	t.Helper()
	deltatest.Require(t)
	s := newScene(t)
	vs := updates(t, n)
	mustPublish(t, s.r, vs[0])
	return s, vs
}

// vk is the version key of the i-th of updates.
func vk(i int) string { return catalog.VersionKey(t0.Add(time.Duration(i) * time.Hour)) }

// deltaItems returns version vk's delta items.
func deltaItems(t testing.TB, r *Registry, vk string) map[string]catalog.Item {
	t.Helper()
	v := readCatalog(t, r).Products["nginx:amd64"].Versions[vk]
	if v == nil {
		t.Fatalf("no version %s", vk)
	}
	return v.Deltas()
}
