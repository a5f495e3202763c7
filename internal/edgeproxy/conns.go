package edgeproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// clientListener accepts the connections the server serves: it closes at
// once a connection from a client (an IPv4 address, an IPv6 /64: see
// clientKey) that already holds max open ones (max ≤ 0: no limit), and
// caps each socket's send buffer at sendBuffer bytes when set (0: the
// kernel's autotuning). Connections from exempt peers (trusted proxies,
// whose connections carry many clients' requests) are not counted.
type clientListener struct {
	net.Listener
	max        int
	sendBuffer int
	exempt     func(netip.Addr) bool
	refused    prometheus.Counter

	mu    sync.Mutex
	count map[string]int
}

func newClientListener(ln net.Listener, max, sendBuffer int, exempt func(netip.Addr) bool, refused prometheus.Counter) *clientListener {
	return &clientListener{Listener: ln, max: max, sendBuffer: sendBuffer, exempt: exempt, refused: refused, count: map[string]int{}}
}

func (l *clientListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cc := &clientConn{Conn: c, release: func() {}}
		if peer, err := netip.ParseAddrPort(c.RemoteAddr().String()); err != nil || !l.exempt(peer.Addr()) {
			addr := clientKey(c.RemoteAddr().String())
			if !l.admit(addr) {
				l.refused.Inc()
				c.Close()
				continue
			}
			cc.release = func() { l.release(addr) }
		}
		if tc := tcpOf(c); tc != nil {
			if l.sendBuffer > 0 {
				tc.SetWriteBuffer(l.sendBuffer)
			}
			cc.raw, _ = tc.SyscallConn()
		}
		return cc, nil
	}
}

// tcpOf is the TCP connection under c, if any.
func tcpOf(c net.Conn) *net.TCPConn {
	for {
		switch x := c.(type) {
		case *net.TCPConn:
			return x
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
}

// admit counts a connection from addr, unless it holds max already.
func (l *clientListener) admit(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.count[addr]
	if l.max > 0 && n >= l.max {
		return false
	}
	l.count[addr] = n + 1
	return true
}

func (l *clientListener) release(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[addr]--; l.count[addr] <= 0 {
		delete(l.count, addr)
	}
}

// open is the number of connections a client (clientKey) holds.
func (l *clientListener) open(addr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[addr]
}

// clientConn is an accepted connection. Closing it gives its place back.
// A write that times out (the client took too little, too slowly) makes
// the close a reset (SO_LINGER 0): the kernel drops at once what it still
// holds for the client, where a plain close would keep it, and the socket,
// in FIN-WAIT-1 for as long as the client keeps acknowledging, however
// slowly. unacked tells how much of what was written the client has not
// acknowledged. While batched runs, writes are gathered and sent as one.
type clientConn struct {
	net.Conn
	raw     syscall.RawConn // the TCP socket (nil if not TCP)
	tls     bool            // served over TLS (set by the server's ConnContext)
	wmu     sync.Mutex
	batch   *[]byte // while set, writes are gathered there (batched); under wmu
	once    sync.Once
	release func()
}

// ReadFrom sends what r reads straight to the socket (sendfile for a
// file): net/http uses it for plain HTTP/1 responses.
func (c *clientConn) ReadFrom(r io.Reader) (int64, error) {
	tc := tcpOf(c.Conn)
	if tc == nil {
		return io.Copy(struct{ io.Writer }{c}, r)
	}
	n, err := tc.ReadFrom(r)
	c.resetOnTimeout(err)
	return n, err
}

// resetOnTimeout makes the close a reset after a write timed out.
func (c *clientConn) resetOnTimeout(err error) {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		if tc := tcpOf(c.Conn); tc != nil {
			tc.SetLinger(0)
		}
	}
}

func (c *clientConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if bp := c.batch; bp != nil {
		if len(*bp)+len(p) > cap(*bp) {
			if err := c.flushBatch(); err != nil {
				return 0, err
			}
		}
		if len(p) <= cap(*bp) {
			*bp = append(*bp, p...)
			return len(p), nil
		}
	}
	n, err := c.Conn.Write(p)
	c.resetOnTimeout(err)
	return n, err
}

// batchBufs hold a large write's TLS records: a copy chunk, each record's
// header and tag, and what net/http had buffered.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, bigCopy+8<<10); return &b }}

// batched runs write, gathering everything written meanwhile (the TLS
// records of one large write) to send it in one system call rather than
// one a record: measured, a fifth less server CPU per GiB.
func (c *clientConn) batched(write func() error) error {
	bp := batchBufs.Get().(*[]byte)
	c.wmu.Lock()
	c.batch = bp
	c.wmu.Unlock()
	err := write()
	c.wmu.Lock()
	if ferr := c.flushBatch(); err == nil {
		err = ferr
	}
	c.batch = nil
	c.wmu.Unlock()
	batchBufs.Put(bp)
	return err
}

// flushBatch sends what was gathered; c.wmu is held.
func (c *clientConn) flushBatch() error {
	b := *c.batch
	*c.batch = b[:0]
	if len(b) == 0 {
		return nil
	}
	_, err := c.Conn.Write(b)
	c.resetOnTimeout(err)
	return err
}

func (c *clientConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// NetConn is the accepted connection.
func (c *clientConn) NetConn() net.Conn { return c.Conn }

// unacked is the number of bytes in the socket's send queue (not sent
// yet, or not acknowledged by the client).
func (c *clientConn) unacked() (int64, bool) {
	if c.raw == nil {
		return 0, false
	}
	var n int
	var err error
	if cerr := c.raw.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); cerr != nil || err != nil {
		return 0, false
	}
	return int64(n), true
}

type connKey struct{}

// withConn is the server's ConnContext: requests can reach their
// connection.
func withConn(ctx context.Context, c net.Conn) context.Context {
	tc, isTLS := c.(*tls.Conn)
	if isTLS {
		c = tc.NetConn()
	}
	if cc, ok := c.(*clientConn); ok {
		cc.tls = isTLS
		return context.WithValue(ctx, connKey{}, cc)
	}
	return ctx
}

// connOf is the connection of an HTTP/1 request: one whose response is
// the only thing written to it (nil for HTTP/2, where streams share it).
func connOf(r *http.Request) *clientConn {
	if r.ProtoMajor != 1 {
		return nil
	}
	cc, _ := r.Context().Value(connKey{}).(*clientConn)
	return cc
}

// maxSendQueue bounds the bytes a socket's send queue can hold: the
// kernel's largest send buffer (tcp_wmem's maximum) or the one set.
var maxSendQueue = sync.OnceValue(func() int64 {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if f := strings.Fields(string(b)); err == nil && len(f) == 3 {
		if n, err := strconv.ParseInt(f[2], 10, 64); err == nil {
			return n
		}
	}
	return 64 << 20
})
