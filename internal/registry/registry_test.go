package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/memstore"
)

func TestPublishListAndRepublish(t *testing.T) {
	s := newScene(t)
	r, fs, ctx := s.r, s.fs, s.ctx
	req := makeImage(t, "nginx", t0, 1, "web")
	res := mustPublish(t, r, req)
	if !res.Changed || !res.ProductCreated || res.Product != "nginx:amd64" || len(res.Files) != 2 || !res.Files[0].Uploaded || !res.Files[1].Uploaded {
		t.Fatalf("first publish result = %+v", res)
	}
	entries, err := r.List(ctx)
	if err != nil || len(entries) != 1 || entries[0].Fingerprint != req.Image.Fingerprint || strings.Join(entries[0].Aliases, ",") != "nginx,web" {
		t.Fatalf("List = %+v, %v", entries, err)
	}
	mustVerify(t, r)

	// Republishing the identical image uploads nothing and writes nothing.
	puts, bytes := fs.puts.Load(), fs.putBytes.Load()
	ops := fs.ops.Load()
	res = mustPublish(t, r, req)
	if res.Changed || fs.puts.Load() != puts || fs.putBytes.Load() != bytes {
		t.Errorf("republish: changed=%v, %d puts, %d bytes; want no change, 0 puts", res.Changed, fs.puts.Load()-puts, fs.putBytes.Load()-bytes)
	}
	want := int64(2)
	if testShards > 1 {
		want++ // the root, then the product's file
	}
	if n := fs.ops.Load() - ops; n > want {
		t.Errorf("republish took %d store round trips, want at most %d", n, want)
	}

	// The same image with a new alias: no upload, one catalog write.
	req.Image.Aliases = []string{"www"}
	res = mustPublish(t, r, req)
	if !res.Changed || fs.putBytes.Load()-bytes > 64<<10 || strings.Join(res.AliasesAdded, ",") != "www" {
		t.Errorf("alias-only republish: %+v, %d bytes sent", res, fs.putBytes.Load()-bytes)
	}
	for _, f := range res.Files {
		if f.Uploaded {
			t.Errorf("alias-only republish uploaded %s", f.Path)
		}
	}
	mustVerify(t, r)
}

func TestPublishDryRunWritesNothing(t *testing.T) {
	s := newScene(t)
	s.publish("nginx", t0, 1)
	unchanged := s.frozen()
	req := makeImage(t, "nginx", t0.Add(time.Hour), 2)
	req.DryRun = true
	res := mustPublish(t, s.r, req)
	if !res.DryRun || !res.Changed || !res.Files[1].Uploaded {
		t.Errorf("dry-run result = %+v", res)
	}
	unchanged("the dry run")
}

func TestPublishRefusalsChangeNothing(t *testing.T) {
	s := newScene(t)
	s.publish("nginx", t0, 1, "web")
	unchanged := s.frozen()
	for _, tc := range []struct {
		req  PublishRequest
		want string
	}{
		{makeImage(t, "caddy", t0, 2, "web"), `alias "web" is already owned by product "nginx:amd64"`},
		{makeImage(t, "nginx", t0, 3), "already published with different content"},
	} {
		_, err := s.r.Publish(s.ctx, tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Publish error = %v, want %q", err, tc.want)
		}
	}
	unchanged("a refused publish")
}

// 32 publishers, each with its own Registry, publish 3 versions each into
// one store at once: every version lands.
func TestConcurrentPublishersAllLand(t *testing.T) {
	s := newScene(t)
	publishers, versions := 32, 3
	if raceEnabled {
		publishers, versions = 12, 2
	}
	reqs := make([][]PublishRequest, publishers)
	for i := range publishers {
		for v := range versions {
			reqs[i] = append(reqs[i], makeImage(t, fmt.Sprintf("app%02d", i), t0.Add(time.Duration(v)*time.Hour), int64(i*10+v)))
		}
	}
	var retries atomic.Int64
	errs := make([]error, publishers)
	var wg sync.WaitGroup
	for i := range publishers {
		wg.Go(func() {
			r := s.another() // each publisher its own Registry
			for _, req := range reqs[i] {
				res, err := r.Publish(s.ctx, req)
				if errs[i] = err; err != nil {
					return
				}
				retries.Add(int64(res.Retries))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	r := s.another()
	c := readCatalog(t, r)
	for i := range publishers {
		for _, req := range reqs[i] {
			if _, _, ok := c.FindFingerprint(req.Image.Fingerprint); !ok {
				t.Errorf("%s version %s is missing from the catalog", req.Image.Name, catalog.VersionKey(req.Image.Created))
			}
		}
	}
	if c.State != nil && len(c.State.Pending) != 0 {
		t.Errorf("pending intents left behind: %+v", c.State.Pending)
	}
	mustVerify(t, r)
	t.Logf("%d publishers × %d versions: %d catalog writes lost to a concurrent writer and retried", publishers, versions, retries.Load())
}

// The store applies a catalog write but the reply is lost and the retry
// answers 412 (the SDK trap): publish still succeeds, exactly once.
func TestLostResponseIsRecognisedAsSuccess(t *testing.T) {
	s := newScene(t)
	r, fs := s.r, s.fs
	s.publish("nginx", t0, 1)
	lost := 0
	fs.afterPut = func(key string, opts store.PutOptions, err error) error {
		if isCatalogFile(key) && err == nil && lost < 2 {
			lost++
			return fmt.Errorf("lost response, then retried: %w", store.ErrPreconditionFailed)
		}
		return err
	}
	req := makeImage(t, "nginx", t0.Add(time.Hour), 2)
	res := mustPublish(t, r, req)
	if lost != 2 || !res.Changed {
		t.Fatalf("lost=%d, result %+v", lost, res)
	}
	c := readCatalog(t, r)
	if n := len(c.Products["nginx:amd64"].Versions); n != 2 {
		t.Errorf("versions = %d, want 2", n)
	}
	mustVerify(t, r)
}

func TestConflictsAreBounded(t *testing.T) {
	s := newScene(t)
	r, fs := s.r, s.fs
	r.MaxAttempts = 3
	fs.beforePut = func(key string, _ store.PutOptions) error {
		if isCatalogFile(key) {
			return store.ErrPreconditionFailed
		}
		return nil
	}
	_, err := r.Publish(context.Background(), makeImage(t, "nginx", t0, 1))
	if !errors.Is(err, ErrTooManyConflicts) {
		t.Fatalf("err = %v, want ErrTooManyConflicts", err)
	}
}

// A publisher killed at any instant (every store operation after the n-th
// fails) leaves a registry that verifies, and the next publish succeeds.
func TestKilledAtAnyInstantLeavesAValidRegistry(t *testing.T) {
	base, next, after := makeImage(t, "base", t0, 100), makeImage(t, "nginx", t0, 1), makeImage(t, "nginx", t0.Add(time.Hour), 1001)
	n := killedAtEveryInstant(t, base, next, after, nil)
	t.Logf("killed at each of the first %d store operations of a publish: registry valid every time", n)
}

// Prune with --keep 1 --grace 0s racing a publish never deletes a file of
// the image being published.
func TestPruneDuringPublishSparesItsFiles(t *testing.T) {
	s := newScene(t)
	r, fs := s.r, s.fs
	s.twoVersions()
	req := makeImage(t, "nginx", t0.Add(2*time.Hour), 3)
	metaKey, rootKey := catalog.ImagePaths(req.Image.Fingerprint, req.Image.RootKind)

	// Hold the publish between its uploads and its commit, prune, release.
	uploaded, release := make(chan struct{}), make(chan struct{})
	fs.beforePut = func(key string, opts store.PutOptions) error {
		if isCatalogFile(key) && !opts.IfAbsent {
			c := readCatalog(t, &Registry{Store: fs.Store})
			if c.LivePending(time.Now()) != nil {
				if _, err := fs.Store.Stat(context.Background(), rootKey); err == nil {
					select {
					case <-uploaded:
					default:
						close(uploaded)
						<-release
					}
				}
			}
		}
		return nil
	}
	done := make(chan error)
	go func() {
		_, err := s.another().Publish(s.ctx, req)
		done <- err
	}()
	<-uploaded
	pr := &Registry{Store: fs.Store, BackoffBase: time.Millisecond}
	res, err := pr.Prune(s.ctx, PruneOptions{Keep: 1, Grace: 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Deleted {
		if p == metaKey || p == rootKey {
			t.Errorf("prune deleted %s of the image being published", p)
		}
	}
	// The oldest version's 2 files, and the second version's delta from it.
	if len(res.Deleted) != 3 || len(res.Removed) != 1 {
		t.Errorf("prune removed %d versions and deleted %v; want the oldest version's 2 files and the delta from it", len(res.Removed), res.Deleted)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustVerify(t, r)
}

// A publish that reuses a file a running prune has announced for deletion
// waits for the prune, then uploads the file again.
func TestPublishWaitsForPruneOfReusedFile(t *testing.T) {
	s := newScene(t)
	r, fs := s.r, s.fs
	req := s.publish("nginx", t0, 1)
	s.remove("nginx")
	deleting, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	fs.beforeDelete = func(string) error {
		once.Do(func() { close(deleting); <-release })
		return nil
	}
	pruned := make(chan error)
	go func() {
		_, err := r.Prune(s.ctx, PruneOptions{Grace: 0})
		pruned <- err
	}()
	<-deleting
	published := make(chan error)
	go func() {
		_, err := s.another().Publish(s.ctx, req)
		published <- err
	}()
	select {
	case err := <-published:
		t.Fatalf("publish finished (%v) while the prune was deleting its files", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := <-pruned; err != nil {
		t.Fatal(err)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	mustVerify(t, r)
}

// Prune drops old versions in one write of a product file and decides
// what to delete in another (of the root: with one catalog file, the same
// file). A publish of the version just dropped, landing between the two
// writes, keeps its files: the decision is made from the catalog as it
// is then.
func TestPruneBetweenItsWritesSparesARepublish(t *testing.T) {
	s := newScene(t)
	old, _ := s.twoVersions()
	republished := false
	s.fs.afterPut = func(key string, _ store.PutOptions, err error) error {
		if isCatalogFile(key) && err == nil && !republished {
			republished = true // right after the prune's first write
			other := &Registry{Store: s.fs.Store, BackoffBase: time.Millisecond}
			if _, err := other.Publish(s.ctx, old); err != nil {
				t.Error(err)
			}
		}
		return err
	}
	res := s.prune(PruneOptions{Keep: 1, Grace: 0})
	s.fs.afterPut = nil
	if !republished || len(res.Removed) != 1 {
		t.Fatalf("prune = %+v (republished between its writes: %v); want the old version dropped first", res, republished)
	}
	for _, p := range old.Image.Paths() {
		if slices.Contains(res.Deleted, p) || !s.stored(p) {
			t.Errorf("prune deleted %s, published again between its writes", p)
		}
	}
	if _, _, ok := readCatalog(t, s.r).FindFingerprint(old.Image.Fingerprint); !ok {
		t.Error("the version published again is not in the catalog")
	}
	mustVerify(t, s.r)
}

func TestPruneGraceAndDryRun(t *testing.T) {
	s := newScene(t)
	old, _ := s.twoVersions()
	now := time.Now()
	s.at(func() time.Time { return now.Add(-time.Minute) })
	s.remove(old.Image.Fingerprint)
	s.at(nil)

	// Dry run: reports the files removed with grace 0 (the old version's
	// two, and the new version's delta from it), changes nothing.
	unchanged := s.frozen()
	if res := s.prune(PruneOptions{Grace: 0, DryRun: true}); len(res.Deleted) != 3 {
		t.Fatalf("dry-run prune = %+v", res)
	}
	unchanged("a dry-run prune")
	// Default grace: a file removed a minute ago stays downloadable.
	if res := s.prune(PruneOptions{Grace: DefaultGrace}); len(res.Deleted) != 0 {
		t.Fatalf("prune with default grace = %+v", res)
	}
	for _, p := range old.Image.Paths() {
		if !s.stored(p) {
			t.Errorf("%s removed from the catalog a minute ago is not downloadable", p)
		}
	}
	// Past the grace period it goes, and the retirement record with it.
	s.at(func() time.Time { return now.Add(DefaultGrace) })
	if res := s.prune(PruneOptions{Grace: DefaultGrace}); len(res.Deleted) != 3 {
		t.Fatalf("prune after the grace period = %+v", res)
	}
	if c := readCatalog(t, s.r); c.State != nil && (len(c.State.Retired) > 0 || c.State.Pruning != nil) {
		t.Errorf("state after prune = %+v", c.State)
	}
	mustVerify(t, s.r)
}

func TestVerifyFindsDamage(t *testing.T) {
	ctx := context.Background()
	tamper := []struct {
		name string
		do   func(t *testing.T, s store.Store, req PublishRequest)
		want string
	}{
		{"missing root", func(t *testing.T, s store.Store, req PublishRequest) {
			s.Delete(ctx, req.Image.Paths()[1])
		}, "is missing"},
		{"root with other bytes, same size", func(t *testing.T, s store.Store, req PublishRequest) {
			k := req.Image.Paths()[1]
			s.Delete(ctx, k)
			s.Put(ctx, k, strings.NewReader(strings.Repeat("x", int(req.Image.Root.Size))), req.Image.Root.Size, store.PutOptions{})
		}, "has sha256"},
		{"wrong combined fingerprint", func(t *testing.T, s store.Store, req PublishRequest) {
			rewriteCatalog(t, s, func(js string) string {
				return strings.ReplaceAll(js, `"combined_squashfs_sha256": "`+req.Image.Fingerprint, `"combined_squashfs_sha256": "`+strings.Repeat("a", 64))
			})
		}, "Image fingerprint doesn't match"},
		{"missing index", func(t *testing.T, s store.Store, req PublishRequest) {
			s.Delete(ctx, catalog.IndexPath)
		}, "index.json is missing"},
		{"index without the product", func(t *testing.T, s store.Store, req PublishRequest) {
			l := catalog.Layout(testShards)
			e := catalog.IndexEntry{DataType: catalog.DataTypeImages, Format: catalog.FormatProducts, Path: l.FileOf("nginx:amd64"), Products: []string{"other:amd64"}}
			b := l.Index(map[string]catalog.IndexEntry{e.Path: e}).Marshal()
			s.Put(ctx, catalog.IndexPath, strings.NewReader(string(b)), int64(len(b)), store.PutOptions{})
		}, "does not list product nginx:amd64"},
		{"catalog with a wrong type", func(t *testing.T, s store.Store, req PublishRequest) {
			rewriteCatalog(t, s, func(js string) string { return strings.Replace(js, `"size": `, `"size": "1"`+`, "x": `, 1) })
		}, "JSON string where int64 is required"},
	}
	for _, tc := range tamper {
		t.Run(tc.name, func(t *testing.T) {
			s := newScene(t)
			req := s.publish("nginx", t0, 1)
			tc.do(t, s.fs.Store, req)
			if rep := s.verifyWith(VerifyOptions{}); rep.OK() || !strings.Contains(problems(rep), tc.want) {
				t.Errorf("problems = %q, want one containing %q", rep.Problems, tc.want)
			}
		})
	}
}

func TestVerifyReportsOrphans(t *testing.T) {
	s := newScene(t)
	s.publish("nginx", t0, 1)
	s.replace("images/"+strings.Repeat("b", 64)+"/rootfs.squashfs", []byte("x"))
	rep := mustVerify(t, s.r)
	if len(rep.Orphans) != 1 || !strings.Contains(rep.Orphans[0].Reason, "unreferenced") {
		t.Errorf("orphans = %+v", rep.Orphans)
	}
}

func rewriteCatalog(t testing.TB, s store.Store, edit func(string) string) {
	t.Helper()
	ctx := context.Background()
	changed := false
	for _, key := range catalogFiles(t, s) {
		rc, _, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		js := edit(string(b))
		if js == string(b) {
			continue
		}
		changed = true
		if _, err := s.Put(ctx, key, strings.NewReader(js), int64(len(js)), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if !changed {
		t.Fatal("edit did not apply")
	}
}

// unconditional makes a store ignore (or reject with 501) conditions.
type unconditional struct {
	store.Store
	reject bool
}

func (u *unconditional) Put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if opts.IfAbsent || opts.IfMatch != "" {
		if u.reject {
			return store.ObjectInfo{}, fmt.Errorf("501: %w", store.ErrNotImplemented)
		}
		opts.IfAbsent, opts.IfMatch = false, ""
	}
	return u.Store.Put(ctx, key, body, size, opts)
}

func TestProbeRefusesUnconditionalStores(t *testing.T) {
	for _, reject := range []bool{false, true} {
		s := &unconditional{Store: memstore.New(), reject: reject}
		r := &Registry{Store: s}
		_, err := r.Publish(context.Background(), makeImage(t, "nginx", t0, 1))
		if !errors.Is(err, ErrUnconditionalStore) {
			t.Fatalf("reject=%v: err = %v, want ErrUnconditionalStore", reject, err)
		}
		if objs, _ := s.List(context.Background(), "streams/"); len(objs) != 0 {
			t.Errorf("reject=%v: the refused publish wrote %v", reject, objs)
		}
		if reject {
			continue
		}
		r.AllowUnconditionalStore = true
		mustPublish(t, r, makeImage(t, "nginx", t0, 1))
		mustVerify(t, r)
	}
}
