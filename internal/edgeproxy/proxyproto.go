package edgeproxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// proxyV2Sig starts a PROXY protocol version 2 header.
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// proxyListener reads the PROXY protocol v2 header that a trusted load
// balancer (HAProxy's send-proxy-v2, an AWS NLB with proxy protocol v2)
// puts in front of each connection, and hands the connection on with the
// client address it names as RemoteAddr. Only trusted peers' headers are
// read; a connection from anyone else is passed on untouched (a header
// it sends is then just bytes the TLS handshake refuses). From a trusted
// peer, a connection without a header (a health check) or with a LOCAL
// one is the peer's own. Headers are read in a goroutine per connection,
// within timeout, so that a slow peer never holds up the others.
type proxyListener struct {
	net.Listener
	trusted func(netip.Addr) bool
	timeout time.Duration

	ready chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
}

func newProxyListener(ln net.Listener, trusted func(netip.Addr) bool, timeout time.Duration) *proxyListener {
	l := &proxyListener{Listener: ln, trusted: trusted, timeout: timeout,
		ready: make(chan net.Conn), errc: make(chan error), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *proxyListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errc <- err:
			case <-l.done:
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		peer, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		if !l.trusted(peer.Addr()) {
			l.hand(c)
			continue
		}
		go func() {
			pc, err := readProxyHeader(c, l.timeout)
			if err != nil {
				c.Close()
				return
			}
			l.hand(pc)
		}()
	}
}

// hand passes a connection to Accept (or closes it once the listener is).
func (l *proxyListener) hand(c net.Conn) {
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *proxyListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *proxyListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// proxiedConn is a connection whose client address came from a PROXY
// protocol header; reads go through what was buffered reading it.
type proxiedConn struct {
	net.Conn
	r      io.Reader
	remote net.Addr
}

func (c *proxiedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *proxiedConn) RemoteAddr() net.Addr       { return c.remote }

// NetConn is the TCP connection.
func (c *proxiedConn) NetConn() net.Conn { return c.Conn }

// errProxyHeader is a PROXY protocol header that does not parse.
var errProxyHeader = errors.New("malformed PROXY protocol v2 header")

// readProxyHeader reads c's PROXY protocol v2 header, if it starts with
// one, within timeout.
func readProxyHeader(c net.Conn, timeout time.Duration) (net.Conn, error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	br := bufio.NewReaderSize(c, 256)
	pc := &proxiedConn{Conn: c, r: br, remote: c.RemoteAddr()}
	sig, err := br.Peek(len(proxyV2Sig))
	if !bytes.Equal(sig, proxyV2Sig) {
		if err != nil && len(sig) == 0 && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return pc, nil // no header: the peer's own connection
	}
	var hdr [16]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[14:16]))
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	if hdr[12]>>4 != 2 {
		return nil, errProxyHeader
	}
	if hdr[12]&0xf == 0 { // LOCAL: the proxy's own connection
		return pc, nil
	}
	var src netip.AddrPort
	switch fam := hdr[13] >> 4; {
	case hdr[12]&0xf != 1:
		return nil, errProxyHeader
	case fam == 1 && len(body) >= 12: // AF_INET
		src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
	case fam == 2 && len(body) >= 36: // AF_INET6
		src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])).Unmap(), binary.BigEndian.Uint16(body[32:34]))
	default: // AF_UNSPEC, AF_UNIX: no address to take
		return pc, nil
	}
	pc.remote = net.TCPAddrFromAddrPort(src)
	return pc, nil
}
