package edgeproxy

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// healthCheck answers /healthz from a cached origin probe: at most one
// probe per interval however many clients ask, through the origin gate.
type healthCheck struct {
	origin   Origin
	gate     *originGate
	interval time.Duration
	group    singleflight.Group

	mu  sync.Mutex
	at  time.Time
	err error
}

// check returns the latest probe's result, probing when it is older than
// the interval.
func (hc *healthCheck) check(ctx context.Context) error {
	hc.mu.Lock()
	at, err := hc.at, hc.err
	hc.mu.Unlock()
	if !at.IsZero() && time.Since(at) < hc.interval {
		return err
	}
	v, _, _ := hc.group.Do("probe", func() (any, error) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err := hc.probe(pctx)
		hc.mu.Lock()
		hc.at, hc.err = time.Now(), err
		hc.mu.Unlock()
		return err, nil
	})
	err, _ = v.(error)
	return err
}

// probe checks that the origin answers: a missing index is still an answer.
func (hc *healthCheck) probe(ctx context.Context) error {
	release, err := hc.gate.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	_, err = hc.origin.Stat(ctx, "streams/v1/index.json")
	if err == nil || isNotFound(err) {
		return nil
	}
	return err
}
