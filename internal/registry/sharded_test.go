package registry

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/memstore"
)

// testShards is the number of catalog files of the registries the tests
// create: 1, or REGISTRY_TEST_SHARDS in the run TestShardedSuite starts.
var testShards = func() int {
	n, _ := strconv.Atoi(os.Getenv("REGISTRY_TEST_SHARDS"))
	return max(n, 1)
}()

// TestShardedSuite runs every test of this package again with registries
// of 4 catalog files (catalog/shard.go): publishing, concurrency, crashes,
// prune and verify hold the same way when products live in several files.
func TestShardedSuite(t *testing.T) {
	if testShards > 1 {
		t.Skip("this is the sharded run")
	}
	cmd := exec.Command(os.Args[0], "-test.count=1", "-test.timeout=20m")
	cmd.Env = append(os.Environ(), "REGISTRY_TEST_SHARDS=4")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the suite with 4 catalog files failed: %v\n%s", err, out)
	}
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
	ctx := context.Background()
	fs := &faultStore{Store: memstore.New()}
	r := &Registry{Store: fs, BackoffBase: time.Millisecond, Shards: 8}
	names := []string{"nginx", "redis", "unbound", "postgresql", "mosquitto", "node-exporter"}
	for i, n := range names {
		mustPublish(t, r, makeImage(t, n, t0, int64(i+1)))
	}
	root, _, err := r.readCatalogAt(ctx, catalog.ImagesPath)
	if err != nil {
		t.Fatal(err)
	}
	if root.Shards() != 8 || len(root.Products) != 0 {
		t.Fatalf("root: %d files, %d products; want 8 and none", root.Shards(), len(root.Products))
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
		key := catalog.ShardOf(pk, 8)
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
	want := catalog.ShardOf(catalog.ProductKey("nginx", "amd64"), 8)
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
	a, b := "alpha", "beta"
	for i := 0; catalog.ShardOf(catalog.ProductKey(a, "amd64"), 4) == catalog.ShardOf(catalog.ProductKey(b, "amd64"), 4); i++ {
		b = fmt.Sprintf("beta%d", i)
	}
	for round := 0; round < 10; round++ {
		fs := &faultStore{Store: memstore.New()}
		r := &Registry{Store: fs, BackoffBase: time.Millisecond, Shards: 4}
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
