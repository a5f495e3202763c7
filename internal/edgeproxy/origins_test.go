package edgeproxy

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/incus-appliance/registry/internal/store"
)

// countingOrigin wraps an origin and counts the calls going through it:
// Gets and Stats, Gets per key, and the most calls (of any kind) in
// progress at once. Each Get takes delay first (a slow origin); with
// slowStat each Stat does too.
type countingOrigin struct {
	Origin
	delay       time.Duration
	slowStat    bool
	gets, stats atomic.Int64
	now, most   atomic.Int64
	mu          sync.Mutex
	keyGets     map[string]int
}

func (o *countingOrigin) Get(ctx context.Context, key string) (io.ReadCloser, store.ObjectInfo, error) {
	o.gets.Add(1)
	o.mu.Lock()
	if o.keyGets == nil {
		o.keyGets = map[string]int{}
	}
	o.keyGets[key]++
	o.mu.Unlock()
	defer o.enter(true)()
	return o.Origin.Get(ctx, key)
}

func (o *countingOrigin) Stat(ctx context.Context, key string) (store.ObjectInfo, error) {
	o.stats.Add(1)
	defer o.enter(o.slowStat)()
	return o.Origin.Stat(ctx, key)
}

// enter records a call in progress, taking delay when slow; the function
// it returns ends the call.
func (o *countingOrigin) enter(slow bool) func() {
	n := o.now.Add(1)
	for {
		m := o.most.Load()
		if n <= m || o.most.CompareAndSwap(m, n) {
			break
		}
	}
	if slow {
		time.Sleep(o.delay)
	}
	return func() { o.now.Add(-1) }
}

// calls is how many Gets and Stats went through.
func (o *countingOrigin) calls() int64 { return o.gets.Load() + o.stats.Load() }

// count is how many Gets of key went through.
func (o *countingOrigin) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.keyGets[key]
}
