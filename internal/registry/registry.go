// Package registry implements the registry operations on top of a
// store.Store and the pure catalog rules: publish, list, verify, remove,
// prune and copy (mirror).
//
// The catalog is stored as its layout says (layout.go, catalog.Layout):
// images.json alone, or images.json as the root of several product files.
// Every catalog change is a read-modify-write of one catalog file made
// with a conditional put (only if the ETag still matches, or only if
// absent for a new file), retried with jittered backoff on conflict
// (commit.go); index.json follows each change the same way. Each write
// carries a commit id, so a retry whose first attempt in fact landed is
// recognised as success. Publish and Copy run as one transaction
// (txn.go): announce the files, upload them, verified by the store
// against their SHA-256, and only then commit the catalog that references
// them. With a signing key (Signing, seal.go) every catalog write, through
// the one write path (writeCatalog), is stamped and followed by its
// signed form (catalog/stamp.go).
package registry

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
)

// Cache-Control values: content-addressed image files never change; the two
// catalog files must be re-fetched often.
const (
	CacheControlImmutable = "public, max-age=31536000, immutable"
	CacheControlCatalog   = "public, max-age=60"
)

// Defaults of the timing knobs.
const (
	// DefaultMaxAttempts bounds the conditional-write attempts of one commit.
	DefaultMaxAttempts = 64
	// PendingLease is how long a publish in flight protects its files from
	// prune.
	PendingLease = 24 * time.Hour
	// PruneWindow is how long a prune may go on deleting after announcing
	// what it deletes.
	PruneWindow = 15 * time.Minute
	// clockSkew is the margin allowed between machines' clocks (and for a
	// delete request in flight) around a prune deadline.
	clockSkew = time.Minute
	// UploadPartSize is the part size of multipart uploads whose part
	// digests are computed while inspecting the image (image.Options).
	UploadPartSize = 16 << 20
)

// Registry runs registry operations against one store.
type Registry struct {
	Store store.Store
	// Now returns the current time (time.Now when nil).
	Now func() time.Time
	// MaxAttempts bounds the attempts of one commit (DefaultMaxAttempts
	// when 0).
	MaxAttempts int
	// BackoffBase is the first retry delay before jitter (20 ms when 0).
	BackoffBase time.Duration
	// AllowUnconditionalStore skips the probe that refuses to create a
	// registry on a store ignoring conditional writes (ErrUnconditionalStore).
	AllowUnconditionalStore bool
	// Shards is the number of catalog product files of a registry this
	// Registry creates (catalog/layout.go); 0 or 1: images.json alone. For
	// an existing registry it must be 0 or the count it has.
	Shards int
	// Signing, when set, signs the catalog (seal.go); without it, a
	// registry that is signed refuses every catalog change.
	Signing *Signing

	probed atomic.Bool // the conditional-write probe passed
}

// New returns a Registry on s with default settings.
func New(s store.Store) *Registry {
	return &Registry{Store: s}
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// newID returns a random 128-bit id in hex.
func newID() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

// backoff sleeps before retry attempt n (1-based): full jitter over an
// exponentially growing window capped at 2 s.
func (r *Registry) backoff(ctx context.Context, n int) error {
	base := r.BackoffBase
	if base == 0 {
		base = 20 * time.Millisecond
	}
	window := base << min(n, 7)
	window = min(window, 2*time.Second)
	d := time.Duration(rand.Int64N(int64(window))) + base/2
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// snapshot is a catalog file as read (or as just written): its bytes,
// ETag ("" when absent), their SHA-256 and, once parsed, the catalog,
// which is never changed (parse hands out copies).
type snapshot struct {
	data []byte
	etag string
	sum  string
	cat  *catalog.Catalog
}

// readSnapshot reads catalog file key; a missing file yields an empty
// snapshot.
func (r *Registry) readSnapshot(ctx context.Context, key string) (snapshot, error) {
	data, etag, err := r.readObject(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return snapshot{}, nil
	}
	if err != nil {
		return snapshot{}, err
	}
	return snapshot{data: data, etag: etag, sum: digest.Of(data)}, nil
}

// parse returns a fresh catalog of the snapshot of file key, decoding
// its bytes once.
func (s *snapshot) parse(key string) (*catalog.Catalog, error) {
	c, err := s.view(key)
	if err != nil {
		return nil, err
	}
	return c.Clone(), nil
}

// view returns the catalog of the snapshot of file key, decoding its
// bytes once; the caller must not change it.
func (s *snapshot) view(key string) (*catalog.Catalog, error) {
	if s.etag == "" {
		if s.cat == nil {
			s.cat = catalog.NewShard(key)
		}
		return s.cat, nil
	}
	if s.cat == nil {
		c, err := catalog.ParseFile(key, s.data)
		if err != nil {
			return nil, fmt.Errorf("%w: fix or restore it before publishing", err)
		}
		s.cat, s.data = c, nil
	}
	return s.cat, nil
}

// maxJSON bounds the size of a catalog file read into memory.
const maxJSON = 256 << 20

func (r *Registry) readObject(ctx context.Context, key string) ([]byte, string, error) {
	rc, info, err := r.Store.Get(ctx, key)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxJSON+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", key, err)
	}
	if len(data) > maxJSON {
		return nil, "", fmt.Errorf("read %s: larger than %d bytes", key, maxJSON)
	}
	return data, info.ETag, nil
}
