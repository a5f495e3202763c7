package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/incus-appliance/registry/internal/store"
)

const (
	casWorkers    = 16
	casIncrements = 20
)

// Increment adds one to the decimal counter stored under key with a
// Get + Put{IfMatch} loop, retrying on ErrPreconditionFailed (and on
// ErrConflict, which S3 may return while another conditional write is in
// progress). It returns the number of lost races. Backend tests use it
// for cross-process checks.
func Increment(ctx context.Context, st store.Store, key string) (retries int, err error) {
	for {
		rc, info, err := st.Get(ctx, key)
		if err != nil {
			return retries, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return retries, err
		}
		n, err := strconv.Atoi(string(data))
		if err != nil {
			return retries, fmt.Errorf("counter %q holds %q: %w", key, data, err)
		}
		_, err = st.Put(ctx, key, bytes.NewReader([]byte(strconv.Itoa(n+1))), int64(len(strconv.Itoa(n+1))),
			store.PutOptions{IfMatch: info.ETag})
		switch {
		case err == nil:
			return retries, nil
		case errors.Is(err, store.ErrPreconditionFailed), errors.Is(err, store.ErrConflict):
			retries++
		default:
			return retries, err
		}
	}
}

func (s *suite) testConcurrentIfMatch(t *testing.T, st store.Store, base string) {
	key := base + "counter"
	mustPut(t, st, key, []byte("0"), store.PutOptions{})
	var wg sync.WaitGroup
	var retries atomic.Int64
	start := make(chan struct{})
	for range casWorkers {
		wg.Go(func() {
			<-start
			for range casIncrements {
				r, err := Increment(t.Context(), st, key)
				retries.Add(int64(r))
				if err != nil {
					t.Errorf("increment: %v", err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	want := strconv.Itoa(casWorkers * casIncrements)
	wantContent(t, st, key, []byte(want))
	t.Logf("%d increments, %d lost races", casWorkers*casIncrements, retries.Load())
}

func (s *suite) testConcurrentIfAbsent(t *testing.T, st store.Store, base string) {
	key := base + "once"
	var wg sync.WaitGroup
	var wins, lost atomic.Int32
	var winner atomic.Value
	start := make(chan struct{})
	for i := range casWorkers {
		wg.Go(func() {
			<-start
			data := []byte(fmt.Sprintf("writer %d", i))
			_, err := put(t.Context(), st, key, data, store.PutOptions{IfAbsent: true})
			for errors.Is(err, store.ErrConflict) { // S3: retry until decided
				_, err = put(t.Context(), st, key, data, store.PutOptions{IfAbsent: true})
			}
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(data)
			case errors.Is(err, store.ErrPreconditionFailed):
				lost.Add(1)
			default:
				t.Errorf("IfAbsent Put: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || lost.Load() != casWorkers-1 {
		t.Fatalf("%d IfAbsent Puts succeeded and %d failed the precondition, want 1 and %d",
			wins.Load(), lost.Load(), casWorkers-1)
	}
	wantContent(t, st, key, winner.Load().([]byte))
}

// cancellingReader cancels its context after the first chunk it returns,
// then keeps producing data.
type cancellingReader struct {
	r      io.Reader
	cancel context.CancelFunc
	reads  int
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.reads == 1 {
		c.cancel()
	}
	c.reads++
	return c.r.Read(p[:min(len(p), 64<<10)])
}

func (s *suite) testCancelledContext(t *testing.T, st store.Store, base string) {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()

	key := base + "new"
	if _, err := put(cancelled, st, key, []byte("data"), store.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: error = %v, want context.Canceled", err)
	}
	wantAbsent(t, st, key)

	// Cancelled while the body streams in.
	body := pseudoRandom(5, 2<<20)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := st.Put(ctx, key, &cancellingReader{r: bytes.NewReader(body), cancel: cancel}, int64(len(body)), store.PutOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put cancelled mid-body: error = %v, want context.Canceled", err)
	}
	wantAbsent(t, st, key)

	// An existing object survives a cancelled replacement.
	key = base + "existing"
	mustPut(t, st, key, []byte("old"), store.PutOptions{})
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	_, err = st.Put(ctx, key, &cancellingReader{r: bytes.NewReader(body), cancel: cancel}, int64(len(body)), store.PutOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("replacing Put cancelled mid-body: error = %v, want context.Canceled", err)
	}
	wantContent(t, st, key, []byte("old"))

	// Every other operation honours the context too.
	if rc, _, err := st.Get(cancelled, key); !errors.Is(err, context.Canceled) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Get with a cancelled context: error = %v, want context.Canceled", err)
	}
	if _, err := st.Stat(cancelled, key); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with a cancelled context: error = %v, want context.Canceled", err)
	}
	if _, err := st.List(cancelled, base); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context: error = %v, want context.Canceled", err)
	}
	if err := st.Delete(cancelled, key); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context: error = %v, want context.Canceled", err)
	}
	wantContent(t, st, key, []byte("old"))
}
