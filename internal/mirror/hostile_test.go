package mirror

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/simplestreams"
	"github.com/incus-appliance/registry/internal/simplestreams/sstest"
	"github.com/incus-appliance/registry/internal/store"
)

// Hostile sources, as small servers: each test reproduces an attack on
// `publish mirror` and checks that it is refused.

// serveFiles serves a tree's files by path.
func serveFiles(files map[string][]byte) http.Handler { return &sstest.Tree{Files: files} }

// httpsSource serves h over HTTPS to a source that trusts it.
func httpsSource(t *testing.T, h http.Handler) *simplestreams.HTTPS {
	return sstest.HTTPSSource(t, "", h)
}

// A source over https that answers "302 Location: http://…" (to a plain
// HTTP server holding the same tree) for index.json, images.json or a
// file is refused: the redirect is not followed, the catalog is not read
// (or the version fails alone), nothing of it is stored. A chain of
// redirects within https is followed up to a bound.
func TestMirrorRefusesRedirectsLeavingHTTPS(t *testing.T) {
	files, tree := newSource(2, 1)
	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Add(1)
		serveFiles(files.files).ServeHTTP(w, r)
	}))
	t.Cleanup(plain.Close)
	var squashfs string
	for _, v := range tree.Catalog.Products[tree.Catalog.ProductKeys()[0]].Versions {
		squashfs = v.Items["squashfs"].Path
	}

	for name, c := range map[string]struct {
		redirect string // the path answered with a redirect to http
		failsAll bool   // the whole mirror fails (a catalog file)
	}{
		"index.json":  {catalog.IndexPath, true},
		"images.json": {catalog.ImagesPath, true},
		"a file":      {squashfs, false},
	} {
		t.Run(name, func(t *testing.T) {
			plainHits.Store(0)
			src := httpsSource(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.TrimPrefix(r.URL.Path, "/") == c.redirect {
					http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusFound)
					return
				}
				serveFiles(files.files).ServeHTTP(w, r)
			}))
			r, s := newRegistry()
			rep, err := Run(ctx, src, r, Options{})
			if c.failsAll {
				if err == nil || !strings.Contains(err.Error(), "leaves https") || strings.Contains(err.Error(), "\n") {
					t.Fatalf("mirror = %+v, %v; want one line saying the redirect leaves https", rep, err)
				}
				wantNothingStored(t, s)
			} else {
				if err != nil || len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0].Error, "leaves https") || rep.Copied != 1 {
					t.Fatalf("mirror = %+v, %v; want the redirected version failed (redirect leaves https), the other copied", rep, err)
				}
				if _, err := s.Stat(ctx, squashfs); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("the redirected file was stored: %v", err)
				}
				mustVerify(t, r)
			}
			if n := plainHits.Load(); n != 0 {
				t.Errorf("the plain http server got %d requests", n)
			}
		})
	}

	t.Run("redirect chains", func(t *testing.T) {
		// /<file> redirects to /r/<chain-1>/<file>, /r/N/<file> to
		// /r/N-1/<file>, and /r/0/<file> is the file: chain redirects in all.
		var chain atomic.Int32
		src := httpsSource(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rest, ok := strings.CutPrefix(r.URL.Path, "/r/")
			if !ok {
				http.Redirect(w, r, fmt.Sprintf("/r/%d%s", chain.Load()-1, r.URL.Path), http.StatusFound)
				return
			}
			n, file, _ := strings.Cut(rest, "/")
			if n != "0" {
				k, _ := strconv.Atoi(n)
				http.Redirect(w, r, fmt.Sprintf("/r/%d/%s", k-1, file), http.StatusMovedPermanently)
				return
			}
			r.URL.Path = "/" + file
			serveFiles(files.files).ServeHTTP(w, r)
		}))
		chain.Store(simplestreams.MaxRedirects)
		r, _ := newRegistry()
		if rep, err := Run(ctx, src, r, Options{}); err != nil || rep.Copied != 2 {
			t.Fatalf("%d redirects per file: mirror = %+v, %v; want both versions copied", chain.Load(), rep, err)
		}
		chain.Store(simplestreams.MaxRedirects + 1)
		r, s := newRegistry()
		rep, err := Run(ctx, src, r, Options{})
		if err == nil || !strings.Contains(err.Error(), "redirects") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%d redirects per file: mirror = %+v, %v; want one line refusing the redirects", chain.Load(), rep, err)
		}
		wantNothingStored(t, s)
	})
}

// A source whose product keys break the key rule (a 100 KB key, one with a
// NUL byte, "..", a backslash) gets those products refused, each with one
// short line; nothing of them is stored; the rest is mirrored. verify
// flags such a key in a catalog that has one (written by an older mirror).
func TestMirrorRefusesBadProductKeys(t *testing.T) {
	files, tree := newSource(3, 1)
	c := tree.Catalog
	pks := c.ProductKeys()
	bad := map[string]string{pks[0]: strings.Repeat("k", 100<<10), pks[1]: "a\x00b/..\\c"}
	for old, k := range bad {
		c.Products[k] = c.Products[old]
		delete(c.Products, old)
	}
	files.files[catalog.ImagesPath] = c.Marshal()
	files.files[catalog.IndexPath] = catalog.BuildIndex(c.ProductKeys()).Marshal()
	src := httpsSource(t, serveFiles(files.files))
	r, s := newRegistry()
	rep, err := Run(ctx, src, r, Options{})
	if err != nil || rep.Copied != 1 || len(rep.Failed) != 2 {
		t.Fatalf("mirror = %+v, %v; want the two bad keys failed, the other copied", rep, err)
	}
	for _, f := range rep.Failed {
		if !strings.Contains(f.Error, "product key") || len(f.Error) > 400 || strings.ContainsAny(f.Error, "\n\x00") {
			t.Errorf("failure %.200q: want one short line about the product key", f.Error)
		}
	}
	got := readCatalog(t, s)
	if len(got.Products) != 1 || got.Products[pks[2]] == nil {
		t.Errorf("products = %.200q, want only %s", got.ProductKeys(), pks[2])
	}
	for _, p := range []string{pks[0], pks[1]} {
		for _, v := range tree.Catalog.Products[bad[p]].Versions {
			for _, it := range v.Items {
				if _, err := s.Stat(ctx, it.Path); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s of a refused product was stored: %v", it.Path, err)
				}
			}
		}
	}
	mustVerify(t, r)

	// A registry holding such a key (as an older mirror wrote it): verify
	// reports it.
	editCatalogFiles(t, s, func(f *catalog.Catalog) {
		if p := f.Products[pks[2]]; p != nil {
			f.Products["a\x00b/..\\c"] = p
			delete(f.Products, pks[2])
		}
	})
	vr, err := r.Verify(ctx)
	if err != nil || vr.OK() || !strings.Contains(strings.Join(vr.Problems, "\n"), `product key: invalid key "a\x00b/..\\c"`) {
		t.Errorf("verify of a catalog holding a bad product key: %v, problems %q", err, vr.Problems)
	}
}

// editCatalogFiles applies edit to every catalog file of the registry in
// s (not index.json), as another tool would, and writes them back.
func editCatalogFiles(t *testing.T, s store.Store, edit func(f *catalog.Catalog)) {
	t.Helper()
	objs, err := s.List(ctx, "streams/v1/")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.Key == catalog.IndexPath {
			continue
		}
		rc, _, err := s.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		f, err := catalog.ParseFile(o.Key, b)
		if err != nil {
			t.Fatal(err)
		}
		edit(f)
		b = f.Marshal()
		if _, err := s.Put(ctx, o.Key, bytes.NewReader(b), int64(len(b)), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// catalogETags returns the ETag of every catalog file of the registry in
// s: the same ETags mean the same bytes (the store contract).
func catalogETags(t *testing.T, s store.Store) map[string]string {
	t.Helper()
	objs, err := s.List(ctx, "streams/v1/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range objs {
		out[o.Key] = o.ETag
	}
	return out
}

// publishHello publishes an appliance "hello" created at created.
func publishHello(t *testing.T, r *registry.Registry, created time.Time) {
	t.Helper()
	dir := t.TempDir()
	meta := imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec("hello", created))
	root := imagetest.WriteSquashfs(t, dir, 64<<10, 1)
	im, err := image.Inspect(ctx, meta, root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Publish(ctx, registry.PublishRequest{Image: im.CatalogImage("hello", nil, nil), MetadataPath: meta, RootPath: root}); err != nil {
		t.Fatal(err)
	}
}

// hijackingTree is a source reusing product key pk of c, with the same
// lineage (arch, os, release, variant) and aliases, and one version newer
// than any of c's: merged, it would take the product's aliases.
func hijackingTree(c *catalog.Catalog, pk string) map[string][]byte {
	tree := sstest.Build(sstest.Spec{Products: 1, Versions: 1, FileSize: 300})
	ours := c.Products[pk]
	for _, p := range tree.Catalog.Products {
		p.Arch, p.OS, p.Release, p.Variant, p.Aliases = ours.Arch, ours.OS, ours.Release, ours.Variant, ours.Aliases
		tree.Catalog.Products = map[string]*catalog.Product{pk: p}
	}
	tree.Files[catalog.ImagesPath] = tree.Catalog.Marshal()
	tree.Files[catalog.IndexPath] = catalog.BuildIndex(tree.Catalog.ProductKeys()).Marshal()
	return tree.Files
}

// A source reusing the key of a product publish wrote (same lineage, a
// newer version, the same aliases) does not get its version in: the
// version fails, naming the product's writer, and the catalog is
// unchanged, so the aliases still resolve to the published image. With
// IntoExisting it goes in, and the report says so.
func TestMirrorCannotTakeOverAPublishedProduct(t *testing.T) {
	r, s := newRegistry()
	publishHello(t, r, time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC))
	c := readCatalog(t, s)
	pk := catalog.ProductKey("hello", "amd64")
	if c.Products[pk] == nil || c.Products[pk].Writer != catalog.WriterPublish {
		t.Fatalf("published product %s = %+v, want it recording publish as its writer", pk, c.Products[pk])
	}
	files := hijackingTree(c, pk)
	src := httpsSource(t, serveFiles(files))
	before := catalogETags(t, s)

	rep, err := Run(ctx, src, r, Options{})
	if err != nil || rep.Copied != 0 || len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0].Error, "was written by publish") {
		t.Fatalf("mirror = %+v, %v; want the version refused as written by publish", rep, err)
	}
	if after := catalogETags(t, s); !maps.Equal(before, after) {
		t.Errorf("the refused mirror changed the catalog")
	}
	for path := range files {
		if _, err := s.Stat(ctx, path); strings.HasPrefix(path, catalog.ImagesDir) && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of the refused source was stored: %v", path, err)
		}
	}
	mustVerify(t, r)

	rep, err = Run(ctx, src, r, Options{IntoExisting: true})
	if err != nil || rep.Copied != 1 || len(rep.Failed) != 0 || len(rep.Joined) != 1 || rep.Joined[0].Product != pk || rep.Joined[0].Writer != catalog.WriterPublish {
		t.Fatalf("mirror --into-existing = %+v, %v; want the version copied into %s and reported", rep, err, pk)
	}
	p := readCatalog(t, s).Products[pk]
	if len(p.Versions) != 2 || p.Writer != catalog.WriterPublish {
		t.Errorf("product after --into-existing: %d versions, writer %q; want 2, still publish", len(p.Versions), p.Writer)
	}
	mustVerify(t, r)
}

// A mirror adds to the products it wrote (a later run with --keep 2 adds
// the older versions), not to those a mirror of another source wrote, nor
// to products recording no writer (written before products recorded
// theirs, or rewritten by a tool that drops the field) unless told to: it
// then records itself, and its later runs need nothing more.
func TestMirrorAddsOnlyToItsOwnProducts(t *testing.T) {
	tree, _ := newSource(3, 2)
	a, b := httpsSource(t, serveFiles(tree.files)), httpsSource(t, serveFiles(tree.files))
	r, s := newRegistry()
	if rep, err := Run(ctx, a, r, Options{Keep: 1}); err != nil || rep.Copied != 3 {
		t.Fatalf("mirror A --keep 1 = %+v, %v", rep, err)
	}
	for pk, p := range readCatalog(t, s).Products {
		if p.Writer != catalog.MirrorWriter(a.String()) {
			t.Errorf("product %s records writer %q, want %q", pk, p.Writer, catalog.MirrorWriter(a.String()))
		}
	}
	if rep, err := Run(ctx, b, r, Options{Keep: 2}); err != nil || rep.Copied != 0 || len(rep.Failed) != 3 || !strings.Contains(rep.Failed[0].Error, "was written by mirror "+a.String()) {
		t.Fatalf("mirror B --keep 2 = %+v, %v; want the 3 older versions refused as written by mirror A", rep, err)
	}

	editCatalogFiles(t, s, func(f *catalog.Catalog) {
		for _, p := range f.Products {
			p.Writer = ""
		}
	})
	if rep, err := Run(ctx, a, r, Options{Keep: 2}); err != nil || rep.Copied != 0 || len(rep.Failed) != 3 || !strings.Contains(rep.Failed[0].Error, "written by a writer it does not record") {
		t.Fatalf("mirror A --keep 2 into products recording no writer = %+v, %v; want them refused", rep, err)
	}
	rep, err := Run(ctx, a, r, Options{Keep: 2, IntoExisting: true})
	// 6 copied: the 3 older versions, then the newest ones gain their
	// deltas; 3 reported, as the products record this mirror from the first.
	if err != nil || rep.Copied != 6 || len(rep.Joined) != 3 {
		t.Fatalf("mirror A --keep 2 --into-existing = %+v, %v; want 6 copied, 3 reported", rep, err)
	}
	for pk, p := range readCatalog(t, s).Products {
		if p.Writer != catalog.MirrorWriter(a.String()) || len(p.Versions) != 2 {
			t.Errorf("product %s: writer %q, %d versions; want mirror A, 2", pk, p.Writer, len(p.Versions))
		}
	}
	if rep, err := Run(ctx, a, r, Options{}); err != nil || rep.Unchanged != 6 || len(rep.Failed) != 0 {
		t.Fatalf("mirror A again = %+v, %v; want all unchanged", rep, err)
	}
	mustVerify(t, r)
}

// splitSource is a tree of products × versions whose catalog is split
// into n products files (streams/v1/images-K.json), as a registry of n
// catalog files serves it.
func splitSource(products, versions, n int) (*memSource, *sstest.Tree) {
	src, tree := newSource(products, versions)
	l := catalog.Layout(n)
	files := map[string]*catalog.Catalog{}
	for _, path := range l.Files() {
		files[path] = catalog.NewShard(path)
	}
	for pk, p := range tree.Catalog.Products {
		files[l.FileOf(pk)].Products[pk] = p
	}
	entries := map[string]catalog.IndexEntry{}
	for path, f := range files {
		src.files[path] = f.Marshal()
		entries[path] = l.Entry(f, path, time.Now())
	}
	delete(src.files, catalog.ImagesPath)
	src.files[catalog.IndexPath] = l.Index(entries).Marshal()
	return src, tree
}

// An index.json larger than MaxIndexJSON (a valid one, naming nothing to
// copy) is refused, with or without a Content-Length, before it is read
// whole: the index cannot make the mirror hold an unbounded document.
func TestMirrorRefusesAnOversizedIndex(t *testing.T) {
	head := `{"format":"index:1.0","index":{"other":{"datatype":"other","format":"products:1.0","path":"x.json","products":[`
	tail := `"last"]}}}`
	item := `"product-0000000000000:amd64",`
	size := int64(simplestreams.MaxIndexJSON + len(item))
	for _, withLength := range []bool{true, false} {
		t.Run(fmt.Sprintf("Content-Length %v", withLength), func(t *testing.T) {
			src := httpsSource(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/"+catalog.IndexPath {
					http.NotFound(w, r)
					return
				}
				n := (size - int64(len(head)+len(tail))) / int64(len(item))
				if withLength {
					w.Header().Set("Content-Length", fmt.Sprint(int64(len(head)+len(tail))+n*int64(len(item))))
				}
				body := io.MultiReader(strings.NewReader(head), io.LimitReader(&repeatReader{s: item}, n*int64(len(item))), strings.NewReader(tail))
				_, _ = io.Copy(w, body)
			}))
			r, s := newRegistry()
			rep, err := Run(ctx, src, r, Options{})
			if err == nil || !strings.Contains(err.Error(), "larger than") || !strings.Contains(err.Error(), catalog.IndexPath) {
				t.Fatalf("mirror of a %d-byte index.json = %+v, %v; want it refused as too large", size, rep, err)
			}
			wantNothingStored(t, s)
		})
	}
}

// repeatReader repeats s without end.
type repeatReader struct {
	s   string
	off int
}

func (r *repeatReader) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		c := copy(b[n:], r.s[r.off:])
		n, r.off = n+c, (r.off+c)%len(r.s)
	}
	return n, nil
}

// A catalog of several products files is copied one file at a time: the
// files of the first products file's versions are sent before the next
// products file is read again, so memory follows the largest products
// file, not their sum. Every products file is checked before anything is
// written: one bad file stops the mirror with nothing written.
func TestMirrorCopiesOneProductsFileAtATime(t *testing.T) {
	src, tree := splitSource(12, 2, 3)
	var mu sync.Mutex
	var opens []string
	src.hook = func(path string, r io.Reader) io.Reader {
		mu.Lock()
		defer mu.Unlock()
		opens = append(opens, path)
		return r
	}
	r, s := newRegistry()
	rep, err := Run(ctx, src, r, Options{})
	if err != nil || rep.Copied != 24 || len(rep.Failed) != 0 {
		t.Fatalf("mirror = %+v, %v; want 24 versions copied", rep, err)
	}
	reads, firstItem, readAfterItems := map[string]int{}, -1, false
	for i, path := range opens {
		if strings.HasPrefix(path, "streams/") {
			reads[path]++
			readAfterItems = readAfterItems || (firstItem >= 0 && path != catalog.IndexPath)
		} else if firstItem < 0 {
			firstItem = i
		}
	}
	if !readAfterItems {
		t.Errorf("every products file was read before the first file was copied: %q", opens)
	}
	for path, n := range reads {
		if n > 2 || (path == catalog.IndexPath && n != 1) {
			t.Errorf("%s read %d times", path, n)
		}
	}
	if len(readCatalog(t, s).Products) != len(tree.Catalog.Products) {
		t.Errorf("products = %d, want %d", len(readCatalog(t, s).Products), len(tree.Catalog.Products))
	}
	mustVerify(t, r)

	bad, _ := splitSource(12, 2, 3)
	bad.files["streams/v1/images-3.json"] = []byte(`{"content_id": "images-3", "datatype": "image-downloads", "format": "products:1.0", "products": {"x": 1}}`)
	r, s = newRegistry()
	if _, err := Run(ctx, bad, r, Options{}); err == nil || !strings.Contains(err.Error(), "images-3.json") {
		t.Fatalf("mirror with a bad third products file: %v, want an error naming it", err)
	}
	wantNothingStored(t, s)
}

// A products file that changes between its check and its copy (a source
// published meanwhile, or one that shows the check another file) stops
// the mirror at that file, with one line; what was copied before it is
// committed and valid.
func TestMirrorSourceChangingDuringTheMirror(t *testing.T) {
	src, _ := splitSource(12, 2, 3)
	other, _ := splitSource(12, 3, 3)
	var reads atomic.Int32
	src.hook = func(path string, r io.Reader) io.Reader {
		if path == "streams/v1/images-3.json" && reads.Add(1) == 2 {
			return bytes.NewReader(other.files[path])
		}
		return r
	}
	r, _ := newRegistry()
	rep, err := Run(ctx, src, r, Options{})
	if err == nil || !strings.Contains(err.Error(), "images-3.json changed while it was being mirrored") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("mirror = %+v, %v; want one line saying images-3.json changed", rep, err)
	}
	if rep == nil || rep.Copied == 0 {
		t.Errorf("report = %+v, want the versions of the files before it copied", rep)
	}
	mustVerify(t, r)
}
