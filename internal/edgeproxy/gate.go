package edgeproxy

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// errNoSlot is returned when no origin slot freed up in time.
var errNoSlot = errors.New("no origin slot")

// originGate is the one cap on concurrent origin calls: catalog reads,
// image fetches into the cache, pass-through downloads, Stats and health
// probes all take a slot from it.
type originGate struct {
	sem      chan struct{}
	wait     time.Duration
	inflight prometheus.Gauge
}

func newOriginGate(n int, wait time.Duration, inflight prometheus.Gauge) *originGate {
	return &originGate{sem: make(chan struct{}, n), wait: wait, inflight: inflight}
}

// acquire takes a slot, waiting at most the gate's wait; the returned
// function gives it back.
func (g *originGate) acquire(ctx context.Context) (func(), error) {
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.sem <- struct{}{}:
		g.inflight.Inc()
		return func() { <-g.sem; g.inflight.Dec() }, nil
	case <-t.C:
		return nil, errNoSlot
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
