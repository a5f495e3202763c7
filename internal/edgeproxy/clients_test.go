package edgeproxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
)

// trustedProxy is a client of p from the loopback address local, speaking
// HTTP/1.1 over TLS, optionally opening with a PROXY protocol header.
type trustedProxy struct {
	p     *proxy
	local string
}

func (tp trustedProxy) dial(t *testing.T, header []byte) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tp.local)}, Timeout: 30 * time.Second}
	c, err := d.Dial("tcp", tp.p.srv.Addr().String())
	if err != nil {
		return nil, err
	}
	if header != nil {
		c.Write(header)
	}
	pem, _ := os.ReadFile(tp.p.Cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// wantServed opens a connection (opening with the PROXY protocol header,
// nil for none) and wants a request on it answered 200; what names the
// connection in a failure.
func (tp trustedProxy) wantServed(t *testing.T, header []byte, what string) {
	t.Helper()
	c, err := tp.dial(t, header)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer c.Close()
	if s := get(t, c); s != 200 {
		t.Errorf("%s: %d", what, s)
	}
}

// get asks for the index over conn with the given header lines.
func get(t *testing.T, conn *tls.Conn, hdr ...string) int {
	t.Helper()
	if _, err := conn.Write([]byte(rq("GET", "/"+catalog.IndexPath, hdr...))); err != nil {
		t.Fatal(err)
	}
	status, _, _, _, err := readOne(bufio.NewReader(conn), "GET")
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// codes sends one request per header line from a client, each on a
// fresh connection, and counts the statuses.
func (tp trustedProxy) codes(t *testing.T, hdrs ...string) map[int]int {
	t.Helper()
	out := map[int]int{}
	for _, h := range hdrs {
		conn, err := tp.dial(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		if h != "" {
			lines = append(lines, h)
		}
		out[get(t, conn, append(lines, "Connection: close")...)]++
		conn.Close()
	}
	return out
}

// repeat is n header lines, format taking the line's index when it has a verb.
func repeat(n int, format string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = format
		if strings.Contains(format, "%") {
			out[i] = fmt.Sprintf(format, i)
		}
	}
	return out
}

// logRemotes is the remote (and via) of every logged request.
func logRemotes(logs *syncBuffer) []string {
	var out []string
	for _, line := range strings.Split(logs.String(), "\n") {
		var e struct{ Remote, Via string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Remote != "" {
			out = append(out, e.Remote+" via "+e.Via)
		}
	}
	return out
}

// From a trusted proxy, the client is the last X-Forwarded-For address
// that is no trusted proxy: each such client gets its own quota and is
// logged; what the client wrote left of it does not matter. From anyone
// else the header is ignored: forging it does not dodge the limits. A
// trusted proxy's own connections are not capped per address.
func TestClientAddressFromTrustedProxies(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	logs := &syncBuffer{}
	trusted, err := ParseTrustedProxies([]string{"127.0.0.2", "192.0.2.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) {
		c.ClientRate, c.ClientBurst, c.MaxConnsPerClient = 0.001, 5, 2
		c.TrustedProxies = trusted
		c.Logger = jsonLog(logs)
	})
	lb, direct := trustedProxy{p, "127.0.0.2"}, trustedProxy{p, "127.0.0.3"}

	// Each step's requests, in order (quotas carry over); only the named
	// statuses are checked.
	for _, step := range []struct {
		what string
		via  trustedProxy
		hdrs []string
		want map[int]int
	}{
		// Spoofing from an untrusted address: one client, whatever it claims.
		{"forged X-Forwarded-For from an untrusted client", direct, repeat(8, "X-Forwarded-For: 198.51.100.%d"), map[int]int{200: 5, 429: 3}},
		{"forged Forwarded from an untrusted client", direct, []string{"Forwarded: for=198.51.100.99"}, map[int]int{429: 1}},
		// Through the trusted proxy: one quota per client it names.
		{"client 203.0.113.1 through the proxy", lb, repeat(6, "X-Forwarded-For: 203.0.113.1"), map[int]int{200: 5, 429: 1}},
		{"client 203.0.113.2 through the proxy", lb, []string{"X-Forwarded-For: 203.0.113.2"}, map[int]int{200: 1}},
		// Left of the last untrusted address is the client's own say:
		// 203.0.113.3 forging other addresses is still 203.0.113.3.
		{"203.0.113.3 forging addresses left of its own", lb, append(repeat(5, "X-Forwarded-For: 10.0.0.%d, 203.0.113.3"), "X-Forwarded-For: 203.0.113.3"), map[int]int{200: 5, 429: 1}},
		// A chain of trusted proxies (a CDN, then the load balancer): the
		// first step uses up 203.0.113.4's quota.
		{"203.0.113.4 behind two trusted proxies", lb, repeat(5, "X-Forwarded-For: 203.0.113.4, 192.0.2.7"), nil},
		{"203.0.113.4 behind two trusted proxies, its quota used", lb, []string{"X-Forwarded-For: 203.0.113.4"}, map[int]int{429: 1}},
		// IPv6 clients count per /64 here too.
		{"one /64 through the proxy", lb, repeat(6, "X-Forwarded-For: 2001:db8:7::%x"), map[int]int{200: 5, 429: 1}},
		// No header: the proxy's own request.
		{"the proxy's own request", lb, []string{""}, map[int]int{200: 1}},
	} {
		got := step.via.codes(t, step.hdrs...)
		for status, n := range step.want {
			if got[status] != n {
				t.Errorf("%s: %v, want %v", step.what, got, step.want)
				break
			}
		}
	}
	remotes := strings.Join(logRemotes(logs), "\n")
	for _, want := range []string{"203.0.113.1 via 127.0.0.2:", "203.0.113.3 via 127.0.0.2:", "203.0.113.4 via 127.0.0.2:", "2001:db8:7::5 via 127.0.0.2:", "127.0.0.3:"} {
		if !strings.Contains(remotes, want) {
			t.Errorf("access log lacks %q", want)
		}
	}
	if strings.Contains(remotes, "198.51.100.") || strings.Contains(remotes, "10.0.0.") {
		t.Errorf("a forged address was logged as the client:\n%s", remotes)
	}
	// Connections: the trusted proxy holds many, an untrusted address two.
	var held []*tls.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 4 {
		c, err := lb.dial(t, nil)
		if err != nil {
			t.Fatalf("trusted proxy's connection %d: %v", i+1, err)
		}
		held = append(held, c)
	}
	for i := range 3 {
		c, err := direct.dial(t, nil)
		if err == nil {
			// A refused connection is closed right after the handshake
			// began: the first request tells.
			_, err = c.Write([]byte(rq("GET", "/healthz")))
			if err == nil {
				_, err = c.Read(make([]byte, 1))
			}
			held = append(held, c)
		}
		if (err == nil) != (i < 2) {
			t.Errorf("untrusted connection %d: %v", i+1, err)
		}
	}
}

// With ClientHeader Forwarded, the client comes from RFC 7239's for=
// (quoted IPv6 with a port included); X-Forwarded-For is then ignored.
func TestClientAddressFromForwarded(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	logs := &syncBuffer{}
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) {
		c.ClientRate, c.ClientBurst = 0.001, 2
		c.TrustedProxies, c.ClientHeader = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, "forwarded"
		c.Logger = jsonLog(logs)
	})
	lb := trustedProxy{p, "127.0.0.2"}
	got := lb.codes(t, `Forwarded: for=203.0.113.9;proto=https`, `Forwarded: for="203.0.113.9:80"`, `Forwarded: for=203.0.113.9`,
		`Forwarded: for="[2001:db8:cafe::17]:4711";proto=https, for=127.0.0.2`)
	if got[200] != 3 || got[429] != 1 {
		t.Errorf("Forwarded: %v, want 3×200 1×429", got)
	}
	if got := lb.codes(t, "X-Forwarded-For: 203.0.113.10", "X-Forwarded-For: 203.0.113.11", "X-Forwarded-For: 203.0.113.12"); got[429] != 1 {
		t.Errorf("X-Forwarded-For when Forwarded is the header: %v, want the proxy's own quota (2)", got)
	}
	if remotes := strings.Join(logRemotes(logs), "\n"); !strings.Contains(remotes, "203.0.113.9 via") || !strings.Contains(remotes, "2001:db8:cafe::17 via") {
		t.Errorf("access log:\n%s", remotes)
	}
}

// proxyV2 is a PROXY protocol v2 header: PROXY from src (LOCAL if src is
// not valid), to 127.0.0.1:443.
func proxyV2(src netip.AddrPort) []byte {
	h := append([]byte{}, proxyV2Sig...)
	if !src.IsValid() {
		return append(h, 0x20, 0x00, 0, 0)
	}
	var body []byte
	fam := byte(0x11)
	if src.Addr().Is4() {
		a, d := src.Addr().As4(), [4]byte{127, 0, 0, 1}
		body = append(append(body, a[:]...), d[:]...)
	} else {
		fam = 0x21
		a, d := src.Addr().As16(), netip.IPv6Loopback().As16()
		body = append(append(body, a[:]...), d[:]...)
	}
	body = binary.BigEndian.AppendUint16(body, src.Port())
	body = binary.BigEndian.AppendUint16(body, 443)
	body = append(body, 0x04, 0, 1, 'x') // a TLV (PP2_TYPE_NOOP), skipped
	h = append(h, 0x21, fam)
	h = binary.BigEndian.AppendUint16(h, uint16(len(body)))
	return append(h, body...)
}

// With ProxyProtocol, a trusted load balancer's PROXY v2 header names the
// client of each connection: the connection cap and the request rate
// count it, the access log shows it, and HTTP headers are not read. A
// connection from the balancer without a header, or with a LOCAL one
// (health checks), is its own; from anyone else the header is not read
// (the TLS handshake then fails on it) and plain TLS works as usual.
func TestProxyProtocolV2(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	logs := &syncBuffer{}
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) {
		c.ClientRate, c.ClientBurst, c.MaxConnsPerClient = 0.001, 3, 1
		c.TrustedProxies, c.ProxyProtocol = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, true
		c.Logger = jsonLog(logs)
	})
	lb, direct := trustedProxy{p, "127.0.0.2"}, trustedProxy{p, "127.0.0.3"}
	client := netip.MustParseAddrPort("203.0.113.7:5555")
	c1, err := lb.dial(t, proxyV2(client))
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if s := get(t, c1, "X-Forwarded-For: 198.51.100.1"); s != 200 {
		t.Errorf("through the balancer: %d", s)
	}
	// The cap (1) counts 203.0.113.7: a second connection for it is
	// refused, one for another client is not.
	if c, err := lb.dial(t, proxyV2(client)); err == nil {
		if _, err = c.Write([]byte(rq("GET", "/healthz"))); err == nil {
			_, err = c.Read(make([]byte, 1))
		}
		c.Close()
		if err == nil {
			t.Error("a second connection of 203.0.113.7 was served")
		}
	}
	c2, err := lb.dial(t, proxyV2(netip.MustParseAddrPort("[2001:db8:9::1]:4000")))
	if err != nil {
		t.Fatalf("another client through the balancer: %v", err)
	}
	defer c2.Close()
	// The rate (burst 3) counts 203.0.113.7 too, whatever it sends.
	get(t, c1, "X-Forwarded-For: 198.51.100.2")
	if s := get(t, c1, "X-Forwarded-For: 198.51.100.3"); s != 200 {
		t.Errorf("third request of 203.0.113.7: %d", s)
	}
	if s := get(t, c1, "X-Forwarded-For: 198.51.100.4"); s != 429 {
		t.Errorf("fourth request of 203.0.113.7: %d, want 429", s)
	}
	if s := get(t, c2); s != 200 {
		t.Errorf("request of 2001:db8:9::1: %d", s)
	}
	// The balancer's health checks: no header, or LOCAL.
	for _, h := range [][]byte{nil, proxyV2(netip.AddrPort{})} {
		lb.wantServed(t, h, "health check")
	}
	// Anyone else: a PROXY header is not read, so not believed.
	if c, err := direct.dial(t, proxyV2(netip.MustParseAddrPort("203.0.113.8:1"))); err == nil {
		c.Close()
		t.Error("a PROXY header from an untrusted address was accepted")
	}
	direct.wantServed(t, nil, "plain TLS from an untrusted address")
	remotes := strings.Join(logRemotes(logs), "\n")
	for _, want := range []string{"203.0.113.7:5555 via", "[2001:db8:9::1]:4000 via", "127.0.0.2:", "127.0.0.3:"} {
		if !strings.Contains(remotes, want) {
			t.Errorf("access log lacks %q:\n%s", want, remotes)
		}
	}
	if strings.Contains(remotes, "198.51.100.") || strings.Contains(remotes, "203.0.113.8") {
		t.Errorf("an address from a header that is not to be read was logged:\n%s", remotes)
	}
}
