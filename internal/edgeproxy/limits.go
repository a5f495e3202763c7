package edgeproxy

import (
	"net"
	"sync"
	"time"
)

// clientAddr is the address part of a remote "host:port".
func clientAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
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
