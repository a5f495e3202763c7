package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
)

// ErrUnconditionalStore means the store ignores or rejects conditional
// writes, so concurrent publishers could silently lose catalog updates.
var ErrUnconditionalStore = errors.New("the store does not honour conditional writes")

// probeConditionalWrites checks, before a registry is first written, that
// the store refuses a write "only if absent" to an existing key and a
// write "only if the ETag matches" with a stale ETag. Some S3-compatible
// stores ignore these headers (every write wins) or answer 501.
func (r *Registry) probeConditionalWrites(ctx context.Context) error {
	if r.AllowUnconditionalStore || r.probed.Load() {
		return nil
	}
	key := catalog.ProbeDir + newID() // deleted afterwards
	defer r.Store.Delete(context.WithoutCancel(ctx), key)
	put := func(body string, opts store.PutOptions) error {
		_, err := r.Store.Put(ctx, key, strings.NewReader(body), int64(len(body)), opts)
		return err
	}
	fail := func(what string, err error) error {
		if errors.Is(err, store.ErrNotImplemented) {
			return fmt.Errorf("%w: it rejected %s (%v)", ErrUnconditionalStore, what, err)
		}
		if err == nil {
			return fmt.Errorf("%w: it ignored %s, so concurrent publishers would silently lose updates", ErrUnconditionalStore, what)
		}
		return fmt.Errorf("probe conditional writes: %w", err)
	}
	if err := put("1", store.PutOptions{IfAbsent: true}); err != nil {
		return fail(`"If-None-Match: *" on a new key`, err)
	}
	if err := put("2", store.PutOptions{IfAbsent: true}); !errors.Is(err, store.ErrPreconditionFailed) {
		return fail(`"If-None-Match: *" on an existing key`, err)
	}
	if err := put("3", store.PutOptions{IfMatch: `"00000000000000000000000000000000"`}); !errors.Is(err, store.ErrPreconditionFailed) {
		return fail(`"If-Match" with a stale ETag`, err)
	}
	r.probed.Store(true)
	return nil
}
