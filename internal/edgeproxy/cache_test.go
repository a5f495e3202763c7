package edgeproxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/filetest"
)

// catalogRegistry writes a registry folder whose images.json names image
// files of the given sizes (one product, one version): what the disk
// cache serves. It returns the folder, the files' keys and their bytes.
func catalogRegistry(t testing.TB, sizes ...int) (dir string, keys []string, data [][]byte) {
	t.Helper()
	dir = t.TempDir()
	items, files := map[string]any{}, map[string][]byte{}
	for i, size := range sizes {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(j*13 + i*7 + j>>11)
		}
		key := fmt.Sprintf("images/%s/file%d.squashfs", digest.Of([]byte{byte(i)}), i)
		items[fmt.Sprintf("f%d", i)] = map[string]any{"ftype": "squashfs", "path": key, "sha256": digest.Of(b), "size": size}
		keys, data = append(keys, key), append(data, b)
		files[key] = b
	}
	cat := map[string]any{"content_id": "images", "datatype": "image-downloads", "format": "products:1.0", "products": map[string]any{
		"app:amd64": map[string]any{"aliases": "app", "arch": "amd64", "os": "Debian", "release": "12", "release_title": "12",
			"versions": map[string]any{"202611200000": map[string]any{"items": items}}},
	}}
	files[catalog.IndexPath] = catalog.BuildIndex([]string{"app:amd64"}).Marshal()
	files[catalog.ImagesPath], _ = json.Marshal(cat)
	filetest.WriteTree(t, dir, files)
	return dir, keys, data
}

// getAll fetches path n times at once and checks every body equals want.
func getAll(t *testing.T, p *proxy, path string, n int, want []byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := p.Client.Get(p.URL + path)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, want) {
				errs <- fmt.Errorf("%d, %d bytes, %v", resp.StatusCode, len(b), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Many clients asking for one image file at once cause one origin read;
// then it is served from disk (Range and conditional requests included),
// and a restarted proxy serves it from the same cache without the origin.
func TestImageCacheOneFetchPerFile(t *testing.T) {
	dir, keys, data := catalogRegistry(t, 3<<20)
	o := &countingOrigin{Origin: dirOrigin(t, dir)}
	cacheDir := t.TempDir()
	p := startProxy(t, o, func(c *Config) { c.CacheDir = cacheDir })
	getAll(t, p, "/"+keys[0], 40, data[0])
	if n := o.count(keys[0]); n != 1 {
		t.Errorf("40 concurrent downloads made %d origin reads, want 1", n)
	}
	sha := digest.Of(data[0])
	if b, err := os.ReadFile(filepath.Join(cacheDir, sha)); err != nil || !bytes.Equal(b, data[0]) {
		t.Errorf("cache file: %v", err)
	}
	resp, body := p.do(t, "GET", "/"+keys[0], "Range", "bytes=100-199")
	if resp.StatusCode != 206 || !bytes.Equal(body, data[0][100:200]) {
		t.Errorf("Range from the cache: %d", resp.StatusCode)
	}
	etag := resp.Header.Get("ETag")
	if etag != `"`+sha+`"` || resp.Header.Get("Cache-Control") != cacheImmutable || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("cached file headers: %v", resp.Header)
	}
	if resp, _ = p.do(t, "GET", "/"+keys[0], "If-None-Match", etag); resp.StatusCode != 304 {
		t.Errorf("If-None-Match on a cached file: %d", resp.StatusCode)
	}
	if resp, body = p.do(t, "HEAD", "/"+keys[0]); resp.StatusCode != 200 || resp.ContentLength != int64(len(data[0])) || len(body) != 0 {
		t.Errorf("HEAD on a cached file: %d %d", resp.StatusCode, resp.ContentLength)
	}
	if n := o.count(keys[0]); n != 1 {
		t.Errorf("after Range, conditional and HEAD requests: %d origin reads, want 1", n)
	}
	if m := p.metrics(t); !strings.Contains(m, `edgeproxy_image_cache_total{result="miss"}`) || !strings.Contains(m, "edgeproxy_image_cache_bytes 3.145728e+06") {
		t.Errorf("metrics lack the image cache series")
	}
	p.stop(t)

	// Restart on the same cache folder: no origin read at all.
	o2 := &countingOrigin{Origin: dirOrigin(t, dir)}
	p2 := startProxy(t, o2, func(c *Config) { c.CacheDir = cacheDir })
	getAll(t, p2, "/"+keys[0], 5, data[0])
	if n := o2.count(keys[0]); n != 0 {
		t.Errorf("after a restart: %d origin reads, want 0 (the cache survives)", n)
	}
}

// A cache entry corrupted on disk (while the proxy was down) is detected
// and fetched again; the client gets the right bytes.
func TestImageCacheCorruptEntryIsRefetched(t *testing.T) {
	dir, keys, data := catalogRegistry(t, 1<<20)
	cacheDir := t.TempDir()
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) { c.CacheDir = cacheDir })
	getAll(t, p, "/"+keys[0], 1, data[0])
	p.stop(t)
	file := filepath.Join(cacheDir, digest.Of(data[0]))
	b, _ := os.ReadFile(file)
	b[1000] ^= 0xff
	os.WriteFile(file, b, 0o644)

	o := &countingOrigin{Origin: dirOrigin(t, dir)}
	p2 := startProxy(t, o, func(c *Config) { c.CacheDir = cacheDir })
	getAll(t, p2, "/"+keys[0], 3, data[0])
	if n := o.count(keys[0]); n != 1 {
		t.Errorf("corrupt entry: %d origin reads, want 1", n)
	}
	if b, _ := os.ReadFile(file); !bytes.Equal(b, data[0]) {
		t.Error("the corrupt cache file was not replaced")
	}
}

// A file the origin sends cut short or with other bytes than the catalog
// says is never served: the answer is a 502, never kept.
func TestImageCacheNeverServesPartialOrWrongFiles(t *testing.T) {
	dir, keys, data := catalogRegistry(t, 1<<20)
	for _, f := range []fault{faultCut, faultCorrupt} {
		t.Run(fmt.Sprint("fault=", f), func(t *testing.T) {
			cacheDir := t.TempDir()
			o := newHostileOrigin(t, dir)
			o.set(keys[0], f, false)
			p := startProxy(t, o.origin(t), func(c *Config) { c.CacheDir = cacheDir })
			for range 3 {
				resp, err := p.Client.Get(p.URL + "/" + keys[0])
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Logf("%d, %d bytes, %v", resp.StatusCode, len(body), err)
				if resp.StatusCode != 502 || bytes.Contains(body, data[0][:1000]) {
					t.Errorf("a %d answer (%d bytes) for a bad fetch", resp.StatusCode, len(body))
				}
			}
			if !eventually(30*time.Second, func() bool { des, _ := os.ReadDir(cacheDir); return len(des) == 0 }) {
				des, _ := os.ReadDir(cacheDir)
				t.Errorf("cache folder holds %v", des)
			}
		})
	}
}

// A file not in the cache yet gets its response header before the fetch
// ends, once HeaderWait passed (Incus gives up on a server that sends no
// header for 30 s), and its body once the whole file is verified;
// concurrent clients still cause one fetch.
func TestImageCacheHeaderWhileFetching(t *testing.T) {
	dir, keys, data := catalogRegistry(t, 4<<20)
	o := newHostileOrigin(t, dir)
	o.set(keys[0], faultNone, true)
	p := startProxy(t, o.origin(t), func(c *Config) { c.HeaderWait = 100 * time.Millisecond })
	type got struct {
		body []byte
		err  error
	}
	results := make(chan got, 3)
	headers := make(chan *http.Response, 3)
	for range 3 {
		go func() {
			resp, err := p.Client.Get(p.URL + "/" + keys[0])
			if err != nil {
				results <- got{err: err}
				return
			}
			defer resp.Body.Close()
			headers <- resp
			b, err := io.ReadAll(resp.Body)
			results <- got{body: b, err: err}
		}()
	}
	for range 3 {
		select {
		case resp := <-headers:
			if resp.StatusCode != 200 || resp.ContentLength != int64(len(data[0])) {
				t.Errorf("header while fetching: %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
			}
		case r := <-results:
			t.Fatalf("a download ended before the origin sent the last byte: %v", r.err)
		case <-time.After(2 * time.Minute):
			t.Fatal("no response header while the fetch was under way")
		}
	}
	o.letGo()
	for range 3 {
		if r := <-results; r.err != nil || !bytes.Equal(r.body, data[0]) {
			t.Errorf("download: %d bytes, %v", len(r.body), r.err)
		}
	}
	if n := o.count(keys[0]); n != 1 {
		t.Errorf("%d origin reads, want 1", n)
	}
}

// The cache keeps at most CacheSize bytes, dropping the least recently
// used file first.
func TestImageCacheEvictsLeastRecentlyUsed(t *testing.T) {
	dir, keys, data := catalogRegistry(t, 1<<20, 1<<20, 1<<20)
	cacheDir := t.TempDir()
	o := &countingOrigin{Origin: dirOrigin(t, dir)}
	p := startProxy(t, o, func(c *Config) { c.CacheDir, c.CacheSize = cacheDir, 2<<20+1000 })
	for _, i := range []int{0, 1, 0, 2, 0} {
		getAll(t, p, "/"+keys[i], 1, data[i])
	}
	// 0 was used last: kept; 1 was the least recently used when 2 came in.
	if got := []int{o.count(keys[0]), o.count(keys[1]), o.count(keys[2])}; fmt.Sprint(got) != "[1 1 1]" {
		t.Errorf("origin reads per file: %v, want [1 1 1]", got)
	}
	getAll(t, p, "/"+keys[1], 1, data[1])
	if n := o.count(keys[1]); n != 2 {
		t.Errorf("evicted file: %d origin reads, want 2", n)
	}
	var total int64
	des, _ := os.ReadDir(cacheDir)
	for _, de := range des {
		fi, _ := de.Info()
		total += fi.Size()
	}
	if total > 2<<20+1000 {
		t.Errorf("cache holds %d bytes, more than its limit", total)
	}
}

// Over plain HTTP (behind a TLS-terminating load balancer), a cached file
// goes from the file to the socket by sendfile: whole and ranged
// downloads are byte for byte the file, and a file being fetched still
// waits for its check.
func TestPlainHTTPServesCachedFilesWhole(t *testing.T) {
	dir, keys, data := catalogRegistry(t, 9<<20+123)
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) { c.PlainHTTP, c.SelfSigned = true, false })
	getAll(t, p, "/"+keys[0], 3, data[0]) // the fill, then from the cache
	getAll(t, p, "/"+keys[0], 3, data[0])
	resp, body := p.do(t, "GET", "/"+keys[0], "Range", "bytes=5000000-")
	if resp.StatusCode != 206 || !bytes.Equal(body, data[0][5000000:]) {
		t.Errorf("range over plain HTTP: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, body = p.do(t, "GET", "/"+keys[0], "Range", "bytes=10-19,100-109"); resp.StatusCode != 206 || !bytes.Contains(body, data[0][100:110]) {
		t.Errorf("two ranges over plain HTTP: %d", resp.StatusCode)
	}
}
