package edgeproxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
)

// Catalog files index.json does not name, and anything else under
// streams/, are 404 with no origin call.
func TestCatalogPathsOnlyAsIndexNames(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	o := &countingOrigin{Origin: dirOrigin(t, dir)}
	p := startProxy(t, o, nil)
	if resp, _ := p.do(t, "GET", "/"+catalog.ImagesPath); resp.StatusCode != 200 {
		t.Fatalf("images.json: %d", resp.StatusCode)
	}
	gets, stats := o.gets.Load(), o.stats.Load()
	for _, path := range []string{"/streams/v1/r17.json", "/streams/v1/images2.json", "/streams/v1/index.xml", "/streams/x.json", "/streams/v2/index.json"} {
		if resp, _ := p.do(t, "GET", path); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	if g, s := o.gets.Load()-gets, o.stats.Load()-stats; g != 0 || s != 0 {
		t.Errorf("unnamed catalog paths made %d origin reads and %d stats, want none", g, s)
	}
}

// /healthz answers from a cached probe: a flood of 2,000 makes at most
// one origin call per interval, and every answer is 200.
func TestHealthzProbesTheOriginOncePerInterval(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	o := &countingOrigin{Origin: dirOrigin(t, dir)}
	p := startProxy(t, o, func(c *Config) { c.HealthInterval = time.Hour; c.MaxOriginRequests = 2 })
	var wg sync.WaitGroup
	var bad atomic.Int64
	sem := make(chan struct{}, 64)
	for range 2000 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			resp, err := p.Client.Get(p.URL + "/healthz")
			if err != nil {
				bad.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d of 2000 /healthz answers were not 200", bad.Load())
	}
	if n := o.calls(); n != 1 {
		t.Errorf("2000 /healthz made %d origin calls, want 1 (one interval)", n)
	}
}

// Every origin call — catalog reads, image downloads, health probes —
// counts against the one cap.
func TestOneOriginCapForEveryClass(t *testing.T) {
	dir, imageKey := testRegistry(t, 256<<10)
	o := &countingOrigin{Origin: dirOrigin(t, dir), delay: 20 * time.Millisecond, slowStat: true}
	p := startProxy(t, o, func(c *Config) {
		c.MaxOriginRequests, c.CatalogTTL, c.HealthInterval = 2, time.Nanosecond, time.Nanosecond
	})
	paths := []string{"/healthz", "/" + catalog.IndexPath, "/" + catalog.ImagesPath, "/" + imageKey}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := p.Client.Get(p.URL + paths[i%len(paths)])
			if err != nil {
				failed.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	t.Logf("%d origin calls, at most %d at once", o.calls(), o.most.Load())
	if m := o.most.Load(); m > 2 {
		t.Errorf("%d origin calls at once, cap 2", m)
	}
	if o.calls() < 10 || failed.Load() != 0 {
		t.Errorf("%d origin calls, %d failed requests: the test did not load the origin", o.calls(), failed.Load())
	}
}

// /healthz takes GET and HEAD only; /metrics is not on the public port
// but on its own listener, GET and HEAD only there too.
func TestHealthzAndMetricsMethods(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	p := startProxy(t, dirOrigin(t, dir), nil)
	for _, m := range []string{"DELETE", "TRACE", "PROPFIND", "POST", "PUT", "OPTIONS", "PATCH"} {
		if resp, _ := p.do(t, m, "/healthz"); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /healthz: %d, want 405", m, resp.StatusCode)
		}
	}
	if resp, _ := p.do(t, "HEAD", "/healthz"); resp.StatusCode != 200 {
		t.Errorf("HEAD /healthz: %d", resp.StatusCode)
	}
	// CONNECT, raw (clients make it a tunnel request).
	conn, err := tls.Dial("tcp", p.srv.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 405 {
		t.Errorf("CONNECT: %v %v, want 405", resp, err)
	}
	conn.Close()
	for _, m := range []string{"GET", "HEAD"} {
		if resp, _ := p.do(t, m, "/metrics"); resp.StatusCode != 404 {
			t.Errorf("%s /metrics on the public port: %d, want 404", m, resp.StatusCode)
		}
	}
	murl := "http://" + p.srv.MetricsAddr().String()
	for m, want := range map[string]int{"GET": 200, "HEAD": 200, "DELETE": 405, "TRACE": 405, "POST": 405, "PROPFIND": 405} {
		req, _ := http.NewRequest(m, murl+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s /metrics on the metrics listener: %d, want %d", m, resp.StatusCode, want)
		}
	}
	mconn, err := net.Dial("tcp", p.srv.MetricsAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer mconn.Close()
	fmt.Fprintf(mconn, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(mconn), nil); err != nil || resp.StatusCode != 405 {
		t.Errorf("OPTIONS * on the metrics listener: %v %v, want 405", resp, err)
	}
}

// A redirect from an HTTP origin is refused (502), never followed.
func TestOriginRedirectIsRefused(t *testing.T) {
	var followed atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
		io.WriteString(w, "evil bytes")
	}))
	defer elsewhere.Close()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}))
	defer origin.Close()
	o, err := NewHTTPOrigin(origin.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, o, nil)
	for _, path := range []string{"/images/" + strings.Repeat("ab", 32) + "/rootfs.squashfs", "/" + catalog.IndexPath} {
		resp, body := p.do(t, "GET", path)
		if resp.StatusCode != 502 || strings.Contains(string(body), "evil") {
			t.Errorf("GET %s through a redirecting origin: %d %q, want 502", path, resp.StatusCode, body)
		}
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("the redirect target was asked %d times", n)
	}
}

func TestAcceptEncodingQValues(t *testing.T) {
	cases := map[string]bool{
		"gzip": true, "gzip;q=0.5": true, "gzip; q=0.001": true, "GZIP;Q=1.0": true, "x-gzip": true,
		"br, gzip;q=0.8": true, "*": true, "*;q=0.1": true, "identity, *;q=0.5": true,
		"": false, "identity": false, "br": false, "gzip;q=0": false, "gzip;q=0.000": false, "gzip;q=0.0": false,
		"gzip;q=0, *": false, "*;q=0": false, "gzip;q=bogus": false, "gzip;q=1.5": false, "gzip;q=0.0001": false,
	}
	for h, want := range cases {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Encoding", h)
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", h, got, want)
		}
	}
	dir, _ := testRegistry(t, 1024)
	p := startProxy(t, dirOrigin(t, dir), nil)
	if resp, _ := p.do(t, "GET", "/"+catalog.IndexPath, "Accept-Encoding", "gzip;q=0.5"); resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("gzip;q=0.5: not gzipped")
	}
}

// TLS 1.2 offers ECDHE with AES-GCM or ChaCha20-Poly1305 only; HTTPS
// answers carry HSTS.
func TestTLS12SuitesAndHSTS(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	p := startProxy(t, dirOrigin(t, dir), nil)
	addr := p.srv.Addr().String()
	dial := func(suite uint16) error {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}})
		if err == nil {
			c.Close()
		}
		return err
	}
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if !supportsTLS12(s) {
			continue
		}
		err := dial(s.ID)
		good := strings.HasPrefix(s.Name, "TLS_ECDHE_") && (strings.Contains(s.Name, "_GCM_") || strings.Contains(s.Name, "CHACHA20"))
		// The self-signed key is ECDSA: its ECDHE-ECDSA AEAD suites must
		// work; nothing else may.
		if good && strings.Contains(s.Name, "_ECDSA_") && err != nil {
			t.Errorf("TLS 1.2 with %s: refused: %v", s.Name, err)
		}
		if !good && err == nil {
			t.Errorf("TLS 1.2 with %s: accepted", s.Name)
		}
		t.Logf("TLS 1.2 %s: %v", s.Name, err == nil)
	}
	resp, _ := p.do(t, "GET", "/"+catalog.IndexPath)
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(hsts, "max-age=") {
		t.Errorf("no HSTS header: %q", hsts)
	}
}

func supportsTLS12(s *tls.CipherSuite) bool {
	for _, v := range s.SupportedVersions {
		if v == tls.VersionTLS12 {
			return true
		}
	}
	return false
}
