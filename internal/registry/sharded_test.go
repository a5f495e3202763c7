package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/suitetest"
)

// testShards is the number of catalog files of the registries the tests
// create: 1, or REGISTRY_TEST_SHARDS in the run TestShardedSuite starts.
var testShards = suitetest.Count("REGISTRY_TEST_SHARDS")

// TestShardedSuite runs every test of this package again with registries
// of 4 catalog files (catalog/layout.go): publishing, concurrency, crashes,
// prune and verify hold the same way when products live in several files.
func TestShardedSuite(t *testing.T) {
	suitetest.RunAgain(t, "REGISTRY_TEST_SHARDS", "4")
}

// isCatalogFile reports whether key is images.json or a product file.
func isCatalogFile(key string) bool {
	return key == catalog.ImagesPath || strings.HasPrefix(key, "streams/v1/images-")
}

// catalogFiles lists the catalog files in s.
func catalogFiles(t testing.TB, s store.Store) []string {
	t.Helper()
	objs, err := s.List(context.Background(), "streams/v1/")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		if isCatalogFile(o.Key) {
			out = append(out, o.Key)
		}
	}
	return out
}

// A registry of 8 catalog files: products go into the file of their family,
// the root holds none, index.json names every file with its products, and a
// publish rewrites one file (not the whole catalog).
func TestShardedLayout(t *testing.T) {
	s := newSceneOf(t, 8)
	ctx, r, fs := s.ctx, s.r, s.fs
	names := []string{"nginx", "redis", "unbound", "postgresql", "mosquitto", "node-exporter"}
	for i, n := range names {
		mustPublish(t, r, makeImage(t, n, t0, int64(i+1)))
	}
	root, _, err := r.readCatalogAt(ctx, catalog.ImagesPath)
	if err != nil {
		t.Fatal(err)
	}
	if root.Layout() != 8 || len(root.Products) != 0 {
		t.Fatalf("root: %d files, %d products; want 8 and none", root.Layout(), len(root.Products))
	}
	data, _, err := r.readObject(ctx, catalog.IndexPath)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := catalog.ParseIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Index) != 8 {
		t.Errorf("index has %d entries, want 8", len(ix.Index))
	}
	for _, n := range names {
		pk := catalog.ProductKey(n, "amd64")
		key := catalog.Layout(8).FileOf(pk)
		c, _, err := r.readCatalogAt(ctx, key)
		if err != nil || c.Products[pk] == nil {
			t.Errorf("%s is not in %s (%v)", pk, key, err)
		}
		if e, _ := ix.EntryByPath(key); !slices.Contains(e.Products, pk) || !slices.Contains(e.Aliases, n+"@amd64") {
			t.Errorf("index entry of %s = %+v, want %s and alias %s@amd64", key, e, pk, n)
		}
	}
	if got := len(readCatalog(t, r).Products); got != len(names) {
		t.Errorf("the whole catalog has %d products, want %d", got, len(names))
	}
	mustVerify(t, r)

	// A new version of nginx writes nginx's file, and neither the root nor
	// another product file.
	var written []string
	fs.beforePut = func(key string, _ store.PutOptions) error {
		if isCatalogFile(key) {
			written = append(written, key)
		}
		return nil
	}
	mustPublish(t, r, makeImage(t, "nginx", t0.Add(time.Hour), 99))
	want := catalog.Layout(8).FileOf(catalog.ProductKey("nginx", "amd64"))
	for _, k := range written {
		if k != want {
			t.Errorf("a publish of nginx wrote %s (only %s expected)", k, want)
		}
	}
	fs.beforePut = nil

	// An existing registry keeps its count.
	other := &Registry{Store: fs, Shards: 3}
	if _, err := other.Publish(ctx, makeImage(t, "caddy", t0, 50)); err == nil || !strings.Contains(err.Error(), "has 8 catalog file(s)") {
		t.Errorf("publish with another count: %v", err)
	}
}

// Two publishers claim one alias for products that live in different
// files at the same time: exactly one gets it, every time, and the
// registry verifies.
func TestShardedAliasClaimsAreExclusive(t *testing.T) {
	a, b := twoFiles(4, "alpha")
	for round := 0; round < 10; round++ {
		r := newSceneOf(t, 4).r
		reqs := []PublishRequest{makeImage(t, a, t0, int64(2*round+1), "web"), makeImage(t, b, t0, int64(2*round+2), "web")}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = r.Publish(context.Background(), reqs[i])
			}()
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: errors %v and %v; want exactly one publish to fail", round, errs[0], errs[1])
		}
		failed := errs[0]
		if failed == nil {
			failed = errs[1]
		}
		if !strings.Contains(failed.Error(), `alias "web"`) {
			t.Errorf("round %d: %v, want an alias clash", round, failed)
		}
		mustVerify(t, r)
	}
}

// twoFiles returns a and another appliance name whose product (on amd64)
// lives in another file of a registry of n files.
func twoFiles(n int, a string) (string, string) {
	l := catalog.Layout(n)
	b := "beta"
	for i := 0; l.FileOf(catalog.ProductKey(a, "amd64")) == l.FileOf(catalog.ProductKey(b, "amd64")); i++ {
		b = fmt.Sprintf("beta%d", i)
	}
	return a, b
}

// A claim left in index.json by a command killed before its index update
// (here a remove) does not block the alias for other files: the publisher
// finds the file no longer backs it, rebuilds that entry and goes on.
func TestShardedStaleClaimIsRepaired(t *testing.T) {
	s := newSceneOf(t, 4)
	ctx, r, fs := s.ctx, s.r, s.fs
	a, b := twoFiles(4, "alpha")
	s.publish(a, t0, 1, "web")
	fs.beforePut = func(key string, _ store.PutOptions) error {
		if key == catalog.IndexPath {
			return errKilled
		}
		return nil
	}
	if _, err := r.Remove(ctx, a, RemoveOptions{}); err == nil {
		t.Fatal("the remove was not interrupted")
	}
	fs.beforePut = nil
	if rep := mustVerify(t, r); !strings.Contains(warnings(rep), "alias claims") {
		t.Errorf("verify warnings = %q, want the stale alias claims", rep.Warnings)
	}
	res, err := r.Publish(ctx, makeImage(t, b, t0, 2, "web"))
	if err != nil {
		t.Fatalf("publish of an alias only a stale claim held: %v", err)
	}
	if !slices.Contains(res.Aliases, "web") {
		t.Errorf("aliases = %v", res.Aliases)
	}
	mustVerify(t, r)
}

// A prune that announced files and then spared them all (a publisher
// announced it reuses them) clears its announcement: nobody waits for it.
func TestShardedPruneSparingEverythingClearsItsAnnouncement(t *testing.T) {
	s := newSceneOf(t, 4)
	ctx, r, fs := s.ctx, s.r, s.fs
	req := s.publish("nginx", t0, 1)
	s.remove("nginx")
	s.at(func() time.Time { return time.Now().Add(3 * DefaultGrace) })
	key := catalog.Layout(4).FileOf(catalog.ProductKey("nginx", "amd64"))
	fs.afterPut = func(k string, opts store.PutOptions, err error) error {
		if k != catalog.ImagesPath || err != nil {
			return err
		}
		// Right after the announcement lands, a publisher announces it
		// reuses the files (in its product's file).
		fs.afterPut = nil
		other := &Registry{Store: fs.Store, Now: r.Now}
		_, cerr := other.commit(ctx, key, newID(), nil, func(c *catalog.Catalog) (bool, error) {
			return true, c.AddPending(catalog.Pending{ID: "p", Product: "nginx:amd64", Paths: req.Image.Paths(), Expires: r.Now().Add(time.Hour)})
		})
		if cerr != nil {
			t.Error(cerr)
		}
		return nil
	}
	if res := s.prune(PruneOptions{Grace: DefaultGrace}); len(res.Deleted) != 0 {
		t.Errorf("deleted %v although a publish in flight reuses them", res.Deleted)
	}
	root, _, err := r.readCatalogAt(ctx, catalog.ImagesPath)
	if err != nil {
		t.Fatal(err)
	}
	if root.LivePruning(r.Now()) != nil {
		t.Errorf("the prune's announcement is still there: %+v", root.State.Pruning)
	}
}

// One image is published once, even as products in different files.
func TestShardedImagePublishedOnce(t *testing.T) {
	r := newSceneOf(t, 4).r
	a, b := twoFiles(4, "alpha")
	req := makeImage(t, a, t0, 1)
	mustPublish(t, r, req)
	again := req
	again.Image.Name = b
	_, err := r.Publish(context.Background(), again)
	if err == nil || !strings.Contains(err.Error(), "is already published as product") {
		t.Fatalf("the same image as %s: %v", b, err)
	}
	mustVerify(t, r)
}
