package edgeproxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/miniotest"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/s3store"
)

// origins returns the registry folder served three ways: directly, from a
// private MinIO bucket (under a prefix) and from a plain HTTP origin.
func origins(t *testing.T, dir string) map[string]Origin {
	t.Helper()
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"private"}})
	srv.SetEnv(t)
	s3, err := s3store.New(context.Background(), s3store.Options{Bucket: "private", Prefix: "team/reg"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s3.Close() })
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(p, "/.") {
			return err
		}
		f, _ := os.Open(p)
		defer f.Close()
		fi, _ := f.Stat()
		key, _ := filepath.Rel(dir, p)
		_, err = s3.Put(context.Background(), key, f, fi.Size(), store.PutOptions{})
		return err
	})
	static := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(static.Close)
	web, err := NewHTTPOrigin(static.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Origin{"dir": dirOrigin(t, dir), "s3": s3, "http": web}
}

func TestHTTPSemantics(t *testing.T) {
	dir, imageKey := testRegistry(t, 300<<10)
	img, _ := os.ReadFile(filepath.Join(dir, imageKey))
	index, _ := os.ReadFile(filepath.Join(dir, catalog.IndexPath))
	for name, o := range origins(t, dir) {
		t.Run(name, func(t *testing.T) {
			p := startProxy(t, o, nil)
			// Plain GET of an image: bytes, length, headers by class.
			resp, body := p.do(t, "GET", "/"+imageKey, "Accept-Encoding", "gzip")
			if resp.StatusCode != 200 || !bytes.Equal(body, img) {
				t.Fatalf("GET image: %d, %d bytes", resp.StatusCode, len(body))
			}
			h := resp.Header
			if h.Get("Cache-Control") != cacheImmutable || h.Get("Content-Type") != "application/octet-stream" ||
				h.Get("Content-Encoding") != "" || h.Get("ETag") == "" || h.Get("Last-Modified") == "" ||
				h.Get("Accept-Ranges") != "bytes" || resp.ProtoMajor != 2 {
				t.Errorf("GET image headers: %s %v", resp.Proto, h)
			}
			for k := range h {
				if strings.HasPrefix(strings.ToLower(k), "x-amz") {
					t.Errorf("origin header %s leaked", k)
				}
			}
			etag := h.Get("ETag")
			// HEAD: length, no body.
			resp, body = p.do(t, "HEAD", "/"+imageKey)
			if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(img)) {
				t.Errorf("HEAD image: %d, length %d, %d body bytes", resp.StatusCode, resp.ContentLength, len(body))
			}
			// Range: 206 with the bytes; unsatisfiable: 416.
			resp, body = p.do(t, "GET", "/"+imageKey, "Range", "bytes=1000-1999")
			if resp.StatusCode != 206 || !bytes.Equal(body, img[1000:2000]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", len(img)) {
				t.Errorf("Range: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
			}
			resp, body = p.do(t, "GET", "/"+imageKey, "Range", "bytes=-100")
			if resp.StatusCode != 206 || !bytes.Equal(body, img[len(img)-100:]) {
				t.Errorf("suffix Range: %d, %d bytes", resp.StatusCode, len(body))
			}
			resp, _ = p.do(t, "GET", "/"+imageKey, "Range", fmt.Sprintf("bytes=%d-", len(img)+10))
			if resp.StatusCode != 416 {
				t.Errorf("unsatisfiable Range: %d, want 416", resp.StatusCode)
			}
			// Conditional GET: 304.
			resp, body = p.do(t, "GET", "/"+imageKey, "If-None-Match", etag)
			if resp.StatusCode != 304 || len(body) != 0 {
				t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
			}
			resp, _ = p.do(t, "GET", "/"+imageKey, "If-Modified-Since", h.Get("Last-Modified"))
			if resp.StatusCode != 304 {
				t.Errorf("If-Modified-Since: %d, want 304", resp.StatusCode)
			}
			// Catalog JSON: short Cache-Control, JSON type, gzip only when asked.
			resp, body = p.do(t, "GET", "/"+catalog.IndexPath)
			if resp.StatusCode != 200 || !bytes.Equal(body, index) || resp.Header.Get("Cache-Control") != "public, max-age=60" ||
				resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Content-Encoding") != "" {
				t.Errorf("GET index.json: %d %v", resp.StatusCode, resp.Header)
			}
			jsonETag := resp.Header.Get("ETag")
			resp, body = p.do(t, "GET", "/"+catalog.IndexPath, "Accept-Encoding", "gzip")
			if resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(gunzip(t, body), index) || resp.Header.Get("ETag") == jsonETag {
				t.Errorf("gzip index.json: %v", resp.Header)
			}
			resp, _ = p.do(t, "GET", "/"+catalog.IndexPath, "If-None-Match", jsonETag)
			if resp.StatusCode != 304 {
				t.Errorf("conditional index.json: %d, want 304", resp.StatusCode)
			}
			// Missing files: 404 with no origin detail.
			for _, path := range []string{"/images/" + strings.Repeat("cd", 32) + "/rootfs.squashfs", "/streams/v1/other.json"} {
				resp, body = p.do(t, "GET", path)
				if resp.StatusCode != 404 || strings.Contains(strings.ToLower(string(body)), "key") {
					t.Errorf("GET %s: %d %q", path, resp.StatusCode, body)
				}
			}
			// Only GET and HEAD.
			for _, m := range []string{"PUT", "POST", "DELETE", "OPTIONS", "PATCH"} {
				resp, _ = p.do(t, m, "/"+imageKey)
				if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
					t.Errorf("%s: %d, want 405", m, resp.StatusCode)
				}
			}
			// Never a listing (/ is the catalog page, see page_test.go).
			for _, path := range []string{"/images/", "/streams/v1/"} {
				if resp, _ = p.do(t, "GET", path); resp.StatusCode != 400 && resp.StatusCode != 404 {
					t.Errorf("GET %s: %d, want 400 or 404", path, resp.StatusCode)
				}
			}
			for _, path := range []string{"/", "/?list-type=2"} {
				if resp, body = p.do(t, "GET", path); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || strings.Contains(string(body), "ListBucketResult") {
					t.Errorf("GET %s: %d %s, want the catalog page", path, resp.StatusCode, resp.Header.Get("Content-Type"))
				}
			}
			if resp, _ = p.do(t, "GET", "/healthz"); resp.StatusCode != 200 {
				t.Errorf("healthz: %d", resp.StatusCode)
			}
		})
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A thousand clients asking for images.json at once cause one origin read.
func TestCatalogRequestCollapsing(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	o := &countingOrigin{Origin: dirOrigin(t, dir), delay: 200 * 1e6}
	// A TTL longer than the test, so that only collapsing is measured.
	p := startProxy(t, o, func(c *Config) { c.CatalogTTL = 5 * time.Minute })
	// A handful of HTTP/2 connections carry the thousand requests (up to
	// 250 streams each); beyond that requests queue in the client: a slow
	// machine makes the test slower, not failed. The server's per-client
	// limits are off (startProxy) and the client's timeout is minutes.
	p.Client.Transport.(*http.Transport).MaxConnsPerHost = 8
	// images.json is served only as a catalog file index.json names: the
	// index is read first (one origin read of its own).
	if resp, _ := p.do(t, "GET", "/"+catalog.IndexPath); resp.StatusCode != 200 {
		t.Fatalf("index.json: %d", resp.StatusCode)
	}
	o.gets.Store(0)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := p.Client.Get(p.URL + "/" + catalog.ImagesPath)
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := o.gets.Load(); n != 1 {
		t.Errorf("1000 concurrent requests made %d origin reads, want 1", n)
	}
	metrics := p.metrics(t)
	for _, want := range []string{`edgeproxy_catalog_cache_total{result="miss"} 2`, `edgeproxy_requests_total{class="catalog",code="200"} 1001`, "edgeproxy_origin_seconds_bucket", "edgeproxy_response_bytes_total"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestHealthzReportsOriginDown(t *testing.T) {
	web, err := NewHTTPOrigin("http://127.0.0.1:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, web, nil)
	if resp, _ := p.do(t, "GET", "/healthz"); resp.StatusCode != 503 {
		t.Errorf("healthz with the origin down: %d, want 503", resp.StatusCode)
	}
	if resp, body := p.do(t, "GET", "/"+catalog.IndexPath); resp.StatusCode != 502 || strings.Contains(string(body), "127.0.0.1") {
		t.Errorf("index.json with the origin down: %d %q", resp.StatusCode, body)
	}
}
