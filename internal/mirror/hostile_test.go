package mirror

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/simplestreams"
	"github.com/incus-appliance/registry/internal/store"
)

// Hostile sources, as small servers: each test reproduces an attack on
// `publish mirror` and checks that it is refused.

// serveFiles serves a tree's files by path (GET only).
func serveFiles(files map[string][]byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}
}

// httpsSource serves h over HTTPS and returns a source for it that trusts
// the test certificate.
func httpsSource(t *testing.T, h http.Handler) *simplestreams.HTTPS {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	src, err := simplestreams.NewHTTPS(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	src.Client.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
	return src
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
		serveFiles(files.files)(w, r)
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
				serveFiles(files.files)(w, r)
			}))
			r, s := newRegistry()
			rep, err := Run(ctx, src, r, Options{})
			if c.failsAll {
				if err == nil || !strings.Contains(err.Error(), "leaves https") || strings.Contains(err.Error(), "\n") {
					t.Fatalf("mirror = %+v, %v; want one line saying the redirect leaves https", rep, err)
				}
				if objs, _ := s.List(ctx, ""); len(objs) != 0 {
					t.Errorf("a refused mirror wrote %d objects", len(objs))
				}
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
			serveFiles(files.files)(w, r)
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
		if objs, _ := s.List(ctx, ""); len(objs) != 0 {
			t.Errorf("a refused mirror wrote %d objects", len(objs))
		}
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
		if p := f.Products[pks[2]]; p != nil {
			f.Products["a\x00b/..\\c"] = p
			delete(f.Products, pks[2])
			b = f.Marshal()
			if _, err := s.Put(ctx, o.Key, bytes.NewReader(b), int64(len(b)), store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	vr, err := r.Verify(ctx)
	if err != nil || vr.OK() || !strings.Contains(strings.Join(vr.Problems, "\n"), `product key: invalid key "a\x00b/..\\c"`) {
		t.Errorf("verify of a catalog holding a bad product key: %v, problems %q", err, vr.Problems)
	}
}
