package edgeproxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/prometheus/client_golang/prometheus"
)

// clientFrom is the proxy's client, but connecting from another loopback
// address (another "client address" to the limits).
func clientFrom(p *proxy, ip string) *http.Client {
	tr := p.Client.Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr.DialContext = d.DialContext
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// A client address holding MaxConnsPerClient connections gets no more
// (each new one is closed at once) while another address is served; a
// closed connection frees its place.
func TestConnectionsPerClientAddress(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) { c.MaxConnsPerClient = 4 })
	p.Client.CloseIdleConnections() // the readiness probe's connection
	addr := p.srv.Addr().String()
	dial := func(ip string) (*tls.Conn, error) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 30 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err = c.Write([]byte(rq("GET", "/healthz"))); err == nil {
				_, err = c.Read(make([]byte, 1))
			}
		}
		return c, err
	}
	// The readiness probe's connection may still be counted until the
	// server notices it closed: wait for the address to hold none.
	l := p.srv.ln.(*clientListener)
	if !eventually(30*time.Second, func() bool { return l.open("127.0.0.1") == 0 }) {
		t.Fatalf("127.0.0.1 still holds %d connections", l.open("127.0.0.1"))
	}
	var held []*tls.Conn
	for i := range 4 {
		c, err := dial("127.0.0.1")
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		held = append(held, c)
	}
	if c, err := dial("127.0.0.1"); err == nil {
		c.Close()
		t.Error("a fifth connection from 127.0.0.1 was served")
	}
	c, err := dial("127.0.0.2")
	if err != nil {
		t.Errorf("127.0.0.2 refused while 127.0.0.1 is at its limit: %v", err)
	} else {
		c.Close()
	}
	held[0].Close()
	if !eventually(30*time.Second, func() bool { return l.open("127.0.0.1") == 3 }) {
		t.Fatalf("closing a connection did not free its place (%d open)", l.open("127.0.0.1"))
	}
	if c, err := dial("127.0.0.1"); err != nil {
		t.Errorf("after closing one: %v", err)
	} else {
		c.Close()
	}
	for _, c := range held[1:] {
		c.Close()
	}
	if m := p.metrics(t); !containsLine(m, "edgeproxy_connections_refused_total 1") {
		t.Errorf("metrics: refused connections not counted")
	}
}

// A client address over its request rate gets 429 with Retry-After;
// another address is not affected.
func TestRequestRatePerClientAddress(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) { c.ClientRate, c.ClientBurst = 0.01, 20 })
	// The readiness probe took one token.
	codes := map[int]int{}
	var retry string
	for range 30 {
		resp, _ := p.do(t, "GET", "/"+catalog.IndexPath)
		codes[resp.StatusCode]++
		if resp.StatusCode == 429 {
			retry = resp.Header.Get("Retry-After")
		}
	}
	if codes[200] != 19 || codes[429] != 11 || retry == "" {
		t.Errorf("30 requests at a burst of 20: %v (Retry-After %q), want 19×200 and 11×429", codes, retry)
	}
	resp, err := clientFrom(p, "127.0.0.2").Get(p.URL + "/" + catalog.IndexPath)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("from 127.0.0.2: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// A download slower than MinTransferRate (after the grace) is cut long
// before WriteTimeout; one at full speed completes.
func TestMinimumTransferRate(t *testing.T) {
	dir, keys, data := catalogRegistry(t, 16<<20)
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) {
		c.MinTransferRate, c.MinRateGrace, c.WriteTimeout = 1<<20, time.Second, 10*time.Minute
	})
	getAll(t, p, "/"+keys[0], 1, data[0])
	req, _ := http.NewRequest("GET", p.URL+"/"+keys[0], nil)
	resp, err := p.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// 64 KiB/s (sixteen times below the minimum) for a little while, then
	// nothing: what is buffered on the way does not matter, the handler
	// must give up on its own, long before WriteTimeout.
	go slowRead(io.LimitReader(resp.Body, 256<<10), 16<<10, 250*time.Millisecond)
	var m string
	done := eventually(3*time.Minute, func() bool {
		m = p.metrics(t)
		return metricValue(m, `edgeproxy_requests_total{class="image",code="200"}`) == 2
	})
	sent := metricValue(m, `edgeproxy_response_bytes_total{class="image"}`)
	t.Logf("handler done: %v; image bytes sent %.0f of %d", done, sent, 2*len(data[0]))
	if !done || sent >= float64(2*len(data[0])) {
		t.Errorf("a reader below the minimum rate was not cut (done %v, %.0f bytes sent)", done, sent)
	}
}

// metricValue is the value of a series in a /metrics page (-1: absent).
func metricValue(page, series string) float64 {
	for _, l := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// containsLine reports whether text has line as one of its lines.
func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// The minimum rate judges the client, not the proxy: an origin slower to
// answer than the grace does not get a fast client cut.
func TestMinimumTransferRateIgnoresOriginWaits(t *testing.T) {
	dir, imageKey := testRegistry(t, 4<<20)
	o := &countingOrigin{Origin: dirOrigin(t, dir), delay: 3 * time.Second}
	p := startProxy(t, o, func(c *Config) {
		c.MinTransferRate, c.MinRateGrace = 1<<20, 500*time.Millisecond
	})
	resp, body := p.do(t, "GET", "/"+imageKey)
	if resp.StatusCode != 200 || len(body) != 4<<20 {
		t.Errorf("a fast client behind a slow origin: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// serveAs answers one request as if it came from remote ("host:port").
func serveAs(p *proxy, remote, method, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	p.srv.srv.Handler.ServeHTTP(rec, req)
	return rec
}

// IPv6 clients are counted per /64: a host with a /64 gets one request
// quota however many of its addresses it uses; another /64 is another
// client, and an IPv4-mapped address counts as the IPv4 one. (Before
// this test, every address had its own bucket.)
func TestIPv6ClientsCountPerSlash64(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) { c.ClientRate, c.ClientBurst = 0.01, 20 })
	codes := map[int]int{}
	for i := range 30 {
		remote := fmt.Sprintf("[2001:db8:1:2:%x::%x]:4000", i, i+1)
		codes[serveAs(p, remote, "GET", "/"+catalog.IndexPath).Code]++
	}
	if codes[200] != 20 || codes[429] != 10 {
		t.Errorf("30 requests from 30 addresses of one /64 at a burst of 20: %v, want 20×200 and 10×429", codes)
	}
	if c := serveAs(p, "[2001:db8:1:3::1]:4000", "GET", "/"+catalog.IndexPath).Code; c != 200 {
		t.Errorf("another /64: %d", c)
	}
	for range 20 {
		serveAs(p, "192.0.2.1:4000", "GET", "/"+catalog.IndexPath)
	}
	if c := serveAs(p, "[::ffff:192.0.2.1]:4000", "GET", "/"+catalog.IndexPath).Code; c != 429 {
		t.Errorf("192.0.2.1 as an IPv4-mapped address after its burst: %d", c)
	}
}

// fakeListener hands out in-memory connections from the given remote
// addresses.
type fakeListener struct {
	remotes []string
	closed  chan struct{}
}

type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

func (l *fakeListener) Accept() (net.Conn, error) {
	if len(l.remotes) == 0 {
		<-l.closed
		return nil, net.ErrClosed
	}
	a, _ := net.Pipe()
	remote, _ := net.ResolveTCPAddr("tcp", l.remotes[0])
	l.remotes = l.remotes[1:]
	return remoteConn{Conn: a, remote: remote}, nil
}

func (l *fakeListener) Close() error   { close(l.closed); return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

// The connection cap counts an IPv6 /64 as one client too.
func TestIPv6ConnectionsCountPerSlash64(t *testing.T) {
	fl := &fakeListener{closed: make(chan struct{})}
	for i := range 5 {
		fl.remotes = append(fl.remotes, fmt.Sprintf("[2001:db8:1:2::%x]:4000", i+1))
	}
	fl.remotes = append(fl.remotes, "[2001:db8:1:3::1]:4000")
	refused := prometheus.NewCounter(prometheus.CounterOpts{Name: "refused"})
	l := newClientListener(fl, 4, 0, func(netip.Addr) bool { return false }, refused)
	defer l.Close()
	var got []string
	for range 5 {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c.RemoteAddr().String())
	}
	if want := []string{"[2001:db8:1:2::1]:4000", "[2001:db8:1:2::2]:4000", "[2001:db8:1:2::3]:4000", "[2001:db8:1:2::4]:4000", "[2001:db8:1:3::1]:4000"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("accepted %v, want %v (the fifth address of one /64 refused)", got, want)
	}
	if n := l.open("2001:db8:1:2::/64"); n != 4 {
		t.Errorf("the /64 holds %d connections, want 4", n)
	}
}
