package edgeproxy

import (
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// clientAddr is the address part of a remote "host:port".
func clientAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// connLimitListener closes, right after accepting it, a connection from an
// address that already holds max open connections.
type connLimitListener struct {
	net.Listener
	max     int
	refused prometheus.Counter

	mu    sync.Mutex
	count map[string]int
}

func newConnLimitListener(ln net.Listener, max int, refused prometheus.Counter) *connLimitListener {
	return &connLimitListener{Listener: ln, max: max, refused: refused, count: map[string]int{}}
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := clientAddr(c.RemoteAddr().String())
		l.mu.Lock()
		n := l.count[addr]
		if n < l.max {
			l.count[addr] = n + 1
		}
		l.mu.Unlock()
		if n >= l.max {
			l.refused.Inc()
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.release(addr) }}, nil
	}
}

func (l *connLimitListener) release(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[addr]--; l.count[addr] <= 0 {
		delete(l.count, addr)
	}
}

// open is the number of connections an address holds.
func (l *connLimitListener) open(addr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[addr]
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// rateLimiter is a token bucket per client address: rate requests a
// second on average, bursts of up to burst.
type rateLimiter struct {
	rate, burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(max(burst, 1)), buckets: map[string]*bucket{}, swept: time.Now()}
}

// allow takes a token for addr, reporting false when its bucket is empty.
func (rl *rateLimiter) allow(addr string, now time.Time) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if now.Sub(rl.swept) > time.Minute {
		rl.sweep(now)
	}
	b := rl.buckets[addr]
	if b == nil {
		b = &bucket{tokens: rl.burst, last: now}
		rl.buckets[addr] = b
	}
	b.tokens = min(rl.burst, b.tokens+now.Sub(b.last).Seconds()*rl.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets buckets that have refilled: they hold nothing a new one
// would not.
func (rl *rateLimiter) sweep(now time.Time) {
	for addr, b := range rl.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*rl.rate >= rl.burst {
			delete(rl.buckets, addr)
		}
	}
	rl.swept = now
}
