package edgeproxy

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"
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
	a := &pending{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		req, _ := http.NewRequest("GET", p.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := p.Client.Do(req)
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
