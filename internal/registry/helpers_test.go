package registry

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/delta"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
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
	return PublishRequest{Image: im.CatalogImage(name, aliases, nil), MetadataPath: meta, RootPath: root, NoDelta: delta.Available() != nil}
}

// faultStore wraps a store to count and intercept operations.
type faultStore struct {
	store.Store
	puts, putBytes, deletes atomic.Int64
	// beforePut runs before a Put reaches the store; a non-nil error is
	// returned instead.
	beforePut func(key string, opts store.PutOptions) error
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

func newTestRegistry() (*Registry, *faultStore) {
	fs := &faultStore{Store: memstore.New()}
	return &Registry{Store: fs, BackoffBase: time.Millisecond, Shards: testShards}, fs
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
