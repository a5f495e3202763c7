package edgeproxy

import (
	"net/netip"
	"sync"
	"time"
)

// clientKey is what the per-client limits count a remote "host:port"
// (or bare address) as: an IPv4 address, or the /64 an IPv6 address is in
// — one host is routinely given a whole /64, so counting its addresses
// apart would give it billions of quotas.
func clientKey(remote string) string {
	a, err := netip.ParseAddr(remote)
	if err != nil {
		ap, perr := netip.ParseAddrPort(remote)
		if perr != nil {
			return remote
		}
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
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
