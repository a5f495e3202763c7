package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
)

// openChanged is an OpenRoot giving the root's bytes with one flipped: a
// file changed behind its digests' back.
func openChanged(t *testing.T, path string) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 1
		return io.NopCloser(bytes.NewReader(data)), nil
	}
}

// A root whose upload finds it changed stores nothing and leaves the
// catalog as it was; Reinspect is called once, and what it returns is
// published.
func TestChangedRootIsReinspectedOnce(t *testing.T) {
	s := newScene(t)
	r, ctx := s.r, s.ctx
	s.publish("other", t0, 1)
	unchanged := s.frozen()

	good := makeImage(t, "nginx", t0, 2)
	stale := good
	stale.OpenRoot = openChanged(t, good.RootPath)
	calls := 0
	stale.Reinspect = func(context.Context) (PublishRequest, error) {
		calls++
		unchanged("the refused upload")
		return good, nil
	}
	res, err := r.Publish(ctx, stale)
	if err != nil || calls != 1 || res.Reinspected == "" {
		t.Fatalf("publish: %v, Reinspect called %d times, Reinspected %q", err, calls, res.Reinspected)
	}
	mustVerify(t, r)

	// Still changed after the second look: the error, no third attempt.
	again := makeImage(t, "nginx", t0.Add(1e9), 3)
	again.OpenRoot = openChanged(t, again.RootPath)
	calls = 0
	again.Reinspect = func(context.Context) (PublishRequest, error) {
		calls++
		req := again
		req.Reinspect = func(context.Context) (PublishRequest, error) { calls++; return req, nil }
		return req, nil
	}
	unchanged = s.frozen()
	if _, err := r.Publish(ctx, again); !errors.Is(err, ErrSourceChanged) || calls != 1 {
		t.Fatalf("publish: %v, Reinspect called %d times; want ErrSourceChanged after one", err, calls)
	}
	unchanged("a refused publish")
}
