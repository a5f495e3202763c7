package edgeproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/digest"
)

// pending is a request under way in the background.
type pending struct {
	done   chan struct{}
	status int
	header http.Header
	body   []byte
	err    error // the request's, or reading the body's
}

// fetch sends a GET (with optional header name, value pairs) in the
// background.
func (p *proxy) fetch(path string, hdr ...string) *pending {
	return p.fetchWith(p.Client, path, hdr...)
}

// fetchWith is fetch with another client (e.g. from another address).
func (p *proxy) fetchWith(c *http.Client, path string, hdr ...string) *pending {
	a := &pending{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		req, _ := http.NewRequest("GET", p.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			a.err = err
			return
		}
		defer resp.Body.Close()
		a.status, a.header = resp.StatusCode, resp.Header
		a.body, a.err = io.ReadAll(resp.Body)
	}()
	return a
}

func (a *pending) ended() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// wait returns once the request ended (failing the test after a while).
func (a *pending) wait(t *testing.T) *pending {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(3 * time.Minute):
		t.Fatal("no answer within 3 minutes")
	}
	return a
}

// waitAnswering returns once the proxy is answering n requests, or one of
// reqs has already ended.
func (p *proxy) waitAnswering(t *testing.T, n float64, reqs ...*pending) {
	t.Helper()
	if !eventually(2*time.Minute, func() bool {
		for _, a := range reqs {
			if a.ended() {
				return true
			}
		}
		return metricValue(p.metrics(t), "edgeproxy_requests_inflight") >= n
	}) {
		t.Fatalf("%v requests in flight, want %v", metricValue(p.metrics(t), "edgeproxy_requests_inflight"), n)
	}
}

// A Range request, or a whole GET, for a file being fetched into the
// cache gets no byte before the whole file matched the catalog: the
// origin corrupts the first byte and holds the last one back, and neither
// client receives a byte of it; they get a 502 without caching headers.
// (On the code before this test, the range excluding the last byte was
// answered 206 with the corrupt first bytes, ETag and immutable.)
func TestNoByteBeforeTheFileIsVerified(t *testing.T) {
	dir, keys, data := catalogRegistry(t, 4<<20, 1<<20)
	o := newHostileOrigin(t, dir)
	o.set(keys[0], faultCorrupt, true)
	o.set(keys[1], faultNone, true)
	p := startProxy(t, o.origin(t), nil)
	ranged := p.fetch("/"+keys[0], "Range", "bytes=0-99")
	whole := p.fetch("/" + keys[0])
	good := p.fetch("/"+keys[1], "Range", "bytes=100-199")
	p.waitAnswering(t, 3, ranged, whole, good)
	if !eventually(time.Minute, func() bool { return o.count(keys[0]) >= 1 && o.count(keys[1]) >= 1 }) {
		t.Fatal("the fills did not start")
	}
	o.letGo()
	for name, a := range map[string]*pending{"range": ranged.wait(t), "whole": whole.wait(t)} {
		t.Logf("%s: %d, %d bytes, %v, Cache-Control %q", name, a.status, len(a.body), a.err, a.header.Get("Cache-Control"))
		if len(a.body) > 0 && a.status != http.StatusBadGateway {
			t.Errorf("%s: %d bytes of an unverified file sent (status %d)", name, len(a.body), a.status)
		}
		if a.status == http.StatusPartialContent || a.status == http.StatusOK && a.err == nil {
			t.Errorf("%s: %d answer for a file that does not match the catalog", name, a.status)
		}
		if a.status != 0 && a.header.Get("Cache-Control") == cacheImmutable {
			t.Errorf("%s: a %d answer marked immutable", name, a.status)
		}
	}
	if a := good.wait(t); a.status != http.StatusPartialContent || !bytes.Equal(a.body, data[1][100:200]) || a.err != nil {
		t.Errorf("range of a good file fetched meanwhile: %d, %d bytes, %v", a.status, len(a.body), a.err)
	}
}

// Past HeaderWait the header of a file being fetched goes out, but its
// body still waits for the check: a corrupt file is cut before its first
// byte.
func TestNoByteAfterTheHeaderBeforeTheCheck(t *testing.T) {
	dir, keys, _ := catalogRegistry(t, 4<<20)
	o := newHostileOrigin(t, dir)
	o.set(keys[0], faultCorrupt, true)
	p := startProxy(t, o.origin(t), func(c *Config) { c.HeaderWait = 100 * time.Millisecond })
	resp, err := p.Client.Get(p.URL + "/" + keys[0]) // returns with the header, before the origin's last byte
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	o.letGo()
	body, err := io.ReadAll(resp.Body)
	t.Logf("%d, then %d body bytes, %v", resp.StatusCode, len(body), err)
	if len(body) != 0 || err == nil {
		t.Errorf("%d bytes of a corrupt file sent after its header (err %v)", len(body), err)
	}
}

// HEAD, a matching If-None-Match and a range past the end are answered
// from the catalog: no origin read, nothing written to the cache. (Before
// this test, the HEAD started a fetch of the whole file.)
func TestHeadAnswersFromTheCatalog(t *testing.T) {
	dir, keys, data := catalogRegistry(t, 2<<20)
	o := newHostileOrigin(t, dir)
	cacheDir := t.TempDir()
	p := startProxy(t, o.origin(t), func(c *Config) { c.CacheDir = cacheDir })
	sha := digest.Of(data[0])
	resp, body := p.do(t, "HEAD", "/"+keys[0])
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(data[0])) || len(body) != 0 ||
		resp.Header.Get("ETag") != `"`+sha+`"` || resp.Header.Get("Cache-Control") != cacheImmutable {
		t.Errorf("HEAD: %d, Content-Length %d, %v", resp.StatusCode, resp.ContentLength, resp.Header)
	}
	if resp, _ = p.do(t, "GET", "/"+keys[0], "If-None-Match", `"`+sha+`"`); resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	if resp, _ = p.do(t, "GET", "/"+keys[0], "Range", "bytes=99999999-"); resp.StatusCode != 416 {
		t.Errorf("range past the end: %d", resp.StatusCode)
	}
	if n := o.count(keys[0]); n != 0 {
		t.Errorf("%d origin reads for answers the catalog gives", n)
	}
	if des, _ := os.ReadDir(cacheDir); len(des) != 0 {
		t.Errorf("the cache folder holds %d files", len(des))
	}
	if resp, body = p.do(t, "GET", "/"+keys[0]); resp.StatusCode != 200 || !bytes.Equal(body, data[0]) || o.count(keys[0]) != 1 {
		t.Errorf("GET: %d, %d bytes, %d origin reads", resp.StatusCode, len(body), o.count(keys[0]))
	}
}

// dirBytes is the size of the files in dir.
func dirBytes(dir string) int64 {
	var n int64
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if fi, err := de.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// Files being fetched count against the cache size from their start: with
// room for one 16 MiB file, four clients asking for four files at once
// start one fill; the others get 503 (try again) and nothing on disk ever
// exceeds the cache size. (Before this test, four fills ran at once and
// put 64 MiB on disk under a 25 MB cache.)
func TestFillsCountAgainstTheCacheSize(t *testing.T) {
	const size, cacheSize = 16 << 20, 25_000_000
	dir, keys, data := catalogRegistry(t, size, size, size, size)
	o := newHostileOrigin(t, dir)
	for _, k := range keys {
		o.set(k, faultNone, true)
	}
	cacheDir := t.TempDir()
	p := startProxy(t, o.origin(t), func(c *Config) { c.CacheDir, c.CacheSize = cacheDir, cacheSize })
	var reqs []*pending
	for i, k := range keys {
		reqs = append(reqs, p.fetchWith(clientFrom(p, fmt.Sprintf("127.0.0.%d", i+2)), "/"+k))
	}
	// Each request is refused, or its fill holds all but the file's last
	// byte on disk.
	var most int64
	if !eventually(2*time.Minute, func() bool {
		most = max(most, dirBytes(cacheDir))
		started, refused := 0, 0
		for i, a := range reqs {
			if a.ended() && a.status == 503 {
				refused++
			} else if o.count(keys[i]) > 0 {
				started++
			}
		}
		return refused+started == len(keys) && dirBytes(cacheDir) >= int64(started)*(size-1)
	}) {
		t.Fatalf("the requests did not settle")
	}
	most = max(most, dirBytes(cacheDir))
	refused := 0
	for _, a := range reqs {
		if a.ended() {
			refused++
			if a.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		}
	}
	t.Logf("4 × %d MiB asked at once under a %d-byte cache: %d fills, %d refused, %d bytes on disk", size>>20, cacheSize, len(keys)-refused, refused, most)
	if most > cacheSize {
		t.Errorf("fills put %d bytes on disk, more than the cache size %d", most, cacheSize)
	}
	o.letGo()
	for i, a := range reqs {
		if a.wait(t); a.status == 200 && !bytes.Equal(a.body, data[i]) {
			t.Errorf("file %d: %d bytes, %v", i, len(a.body), a.err)
		}
	}
	if n := dirBytes(cacheDir); n > cacheSize {
		t.Errorf("the cache holds %d bytes, more than its size", n)
	}
	if v := metricValue(p.metrics(t), `edgeproxy_image_fills_refused_total{reason="full"}`); v != float64(refused) {
		t.Errorf("refused fills (full): %v, want %d", v, refused)
	}
}

// At most MaxFills fills run at once, and one client address may start a
// quarter of them: with MaxFills 4, a client fetching one file gets 503
// for a second while another client's fill starts; a request its client
// abandoned keeps its fill (and its place in the client's share) until
// the fill ends. (Before this test, fills had no cap.)
func TestFillsAreCappedAndShared(t *testing.T) {
	dir, keys, data := catalogRegistry(t, 1<<20, 1<<20, 1<<20, 1<<20, 1<<20, 1<<20)
	o := newHostileOrigin(t, dir)
	for _, k := range keys {
		o.set(k, faultNone, true)
	}
	p := startProxy(t, o.origin(t), func(c *Config) { c.MaxFills = 4 })
	one := clientFrom(p, "127.0.0.2")
	ctx, abandon := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/"+keys[0], nil)
	go func() {
		if resp, err := one.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	if !eventually(time.Minute, func() bool { return o.count(keys[0]) == 1 }) {
		t.Fatal("the first fill did not start")
	}
	abandon()
	second := p.fetchWith(one, "/"+keys[1]).wait(t)
	if second.status != 503 || o.count(keys[1]) != 0 {
		t.Errorf("a second fill for the same client: %d, %d origin reads", second.status, o.count(keys[1]))
	}
	var others []*pending
	for i := 1; i <= 4; i++ {
		others = append(others, p.fetchWith(clientFrom(p, fmt.Sprintf("127.0.0.%d", 2+i)), "/"+keys[i]))
	}
	// Three more clients start a fill each; all four in use, the fourth
	// client is refused.
	if !eventually(time.Minute, func() bool { return o.count(keys[1])+o.count(keys[2])+o.count(keys[3])+o.count(keys[4]) == 3 }) {
		t.Fatal("the other clients' fills did not start")
	}
	refused := 0
	for _, a := range others {
		if a.ended() && a.status == 503 {
			refused++
		}
	}
	if m := p.metrics(t); refused != 1 || metricValue(m, "edgeproxy_image_fills") != 4 ||
		metricValue(m, `edgeproxy_image_fills_refused_total{reason="busy"}`) != 1 ||
		metricValue(m, `edgeproxy_image_fills_refused_total{reason="client"}`) != 1 {
		t.Errorf("%d refused, %v fills running, refused %v busy, %v client", refused, metricValue(m, "edgeproxy_image_fills"),
			metricValue(m, `edgeproxy_image_fills_refused_total{reason="busy"}`), metricValue(m, `edgeproxy_image_fills_refused_total{reason="client"}`))
	}
	o.letGo()
	for _, a := range others {
		a.wait(t)
	}
	if !eventually(time.Minute, func() bool { return metricValue(p.metrics(t), "edgeproxy_image_fills") == 0 }) {
		t.Fatal("fills still running")
	}
	// The abandoned request's fill was kept: served from the cache now.
	if resp, body := p.do(t, "GET", "/"+keys[0]); resp.StatusCode != 200 || !bytes.Equal(body, data[0]) || o.count(keys[0]) != 1 {
		t.Errorf("after the abandoned fill: %d, %d origin reads", resp.StatusCode, o.count(keys[0]))
	}
}

// A file the origin serves corrupt, short, long or stalled fails its fill
// and is then refused for a back-off period without another origin read:
// thirteen requests make one origin read (before this test: thirteen, and
// a stalled fill ran for 30 minutes). A metric counts the failures.
func TestFailedFileIsRememberedAsBad(t *testing.T) {
	dir, keys, _ := catalogRegistry(t, 1<<20, 1<<20, 1<<20, 1<<20)
	o := newHostileOrigin(t, dir)
	faults := []fault{faultCorrupt, faultShort, faultLong, faultStall}
	for i, f := range faults {
		o.set(keys[i], f, false)
	}
	cacheDir := t.TempDir()
	p := startProxy(t, o.origin(t), func(c *Config) { c.CacheDir, c.OriginIdleTimeout = cacheDir, 2*time.Second })
	for i, k := range keys {
		codes := map[int]int{}
		for range 13 {
			resp, _ := p.do(t, "GET", "/"+k)
			codes[resp.StatusCode]++
		}
		t.Logf("fault %d: 13 requests answered %v, %d origin reads", faults[i], codes, o.count(k))
		if o.count(k) != 1 || codes[502] != 13 {
			t.Errorf("fault %d: 13 requests answered %v with %d origin reads, want 13×502 and 1 read", faults[i], codes, o.count(k))
		}
	}
	m := p.metrics(t)
	if v := metricValue(m, "edgeproxy_image_fill_failures_total"); v != 4 {
		t.Errorf("fill failures: %v, want 4", v)
	}
	if v := metricValue(m, `edgeproxy_image_fills_refused_total{reason="bad"}`); v != 48 {
		t.Errorf("refused as bad: %v, want 48", v)
	}
	if des, _ := os.ReadDir(cacheDir); len(des) != 0 {
		t.Errorf("the cache folder holds %d files", len(des))
	}
}
