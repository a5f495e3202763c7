package aptcache

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestAptCacheKeepsPackagesOnly(t *testing.T) {
	var hits atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/debian/pool/main/n/nginx/broken.deb" {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "short")
			return
		}
		io.WriteString(w, "content of "+r.URL.Path)
	}))
	defer upstream.Close()
	c, err := Start(t.TempDir(), upstream.URL+"/debian")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	get := func(p string) string {
		resp, err := http.Get(c.URL() + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	deb := "/pool/main/n/nginx/nginx-light_1.22.1-9_amd64.deb"
	for i := range 3 {
		if got := get(deb); got != "content of /debian"+deb {
			t.Fatalf("GET %s (#%d) = %q", deb, i, got)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("3 GETs of one package reached the mirror %d times, want 1", n)
	}
	for range 2 {
		get("/dists/bookworm/InRelease")
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("indexes must not be cached: mirror hits %d, want 3", n)
	}
	// A short download is not kept.
	get("/pool/main/n/nginx/broken.deb")
	get("/pool/main/n/nginx/broken.deb")
	if n := hits.Load(); n != 5 {
		t.Errorf("a truncated package was cached (mirror hits %d, want 5)", n)
	}
	if resp, _ := http.Get(c.URL() + "/pool/../../etc/passwd"); resp != nil && resp.StatusCode == 200 && strings.Contains(get("/pool/../../etc/passwd"), "root:") {
		t.Error("path traversal through the cache")
	}
}
