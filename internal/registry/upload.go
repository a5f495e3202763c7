package registry

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
)

// upload is one file to store at its content address: a local file, or a
// stream read once.
type upload struct {
	key   string
	ref   catalog.FileRef
	parts []string // the digests of its UploadPartSize parts (optional)
	// path is the local file to send; open, when set, streams the body
	// instead.
	path string
	open func(ctx context.Context) (io.ReadCloser, error)
	// name is how errors of the stream call it.
	name string
	// hash makes the stream check its own sha256 as it is read (a source
	// that checks nothing itself), not only the store.
	hash bool
	// refused turns a body that is not what ref says (its read failed, or
	// the store found other bytes) into the error reported.
	refused func(err error) error
	// made: the publish made the file (a delta, a provenance statement).
	made bool
}

// put stores u unless the store already has it with the right digest; it
// reports whether bytes were sent. beforeCommit runs right before the
// object becomes visible (store.PutOptions.BeforeCommit).
func (r *Registry) put(ctx context.Context, u upload, progress func(string, int64, int64), beforeCommit func(context.Context) error) (bool, error) {
	have, err := r.haveFile(ctx, u.key, u.ref)
	if err != nil || have {
		return false, err
	}
	m := &meter{total: u.ref.Size}
	if progress != nil {
		m.report = func(done int64) { progress(u.key, done, u.ref.Size) }
	}
	var body io.Reader
	var stream *checkedStream
	if u.open != nil {
		rc, err := u.open(ctx)
		if err != nil {
			return false, fmt.Errorf("upload %s: %w", u.key, err)
		}
		defer rc.Close()
		stream = &checkedStream{r: rc, want: u.ref, name: u.name, meter: m}
		if u.hash {
			stream.h = sha256.New()
		}
		body = stream
	} else {
		f, err := os.Open(u.path)
		if err != nil {
			return false, fmt.Errorf("upload %s: %w", u.key, err)
		}
		defer f.Close()
		body = &fileBody{f: f, meter: m}
	}
	_, err = r.Store.Put(ctx, u.key, body, u.ref.Size, store.PutOptions{
		IfAbsent: true, SHA256: u.ref.SHA256, PartSHA256: u.parts, PartSize: UploadPartSize,
		ContentType: "application/octet-stream", CacheControl: CacheControlImmutable,
		BeforeCommit: beforeCommit,
	})
	switch {
	case err == nil:
		return true, nil
	case ctx.Err() == nil && stream != nil && stream.err != nil:
		return false, u.refused(stream.err)
	case errors.Is(err, store.ErrPreconditionFailed):
		// Another writer stored it first: fine if it is the same.
		have, err := r.haveFile(ctx, u.key, u.ref)
		if err == nil && !have {
			err = fmt.Errorf("upload %s: lost a race and the object then vanished", u.key)
		}
		return false, err
	case ctx.Err() == nil && errors.Is(err, store.ErrChecksumMismatch):
		return false, u.refused(err)
	}
	return false, fmt.Errorf("upload %s: %w", u.key, err)
}

// haveFile reports whether the store holds key with the expected digest.
// A different object under a content address means the registry is
// damaged: that is an error, never silently overwritten.
func (r *Registry) haveFile(ctx context.Context, key string, want catalog.FileRef) (bool, error) {
	info, err := r.Store.Stat(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", key, err)
	}
	// A backend that cannot tell the digest without reading leaves SHA256
	// empty: the size must then do (the store verified the digest when the
	// object was written, and `publish verify` re-reads everything).
	if info.Size != want.Size || info.SHA256 != "" && info.SHA256 != want.SHA256 {
		return false, fmt.Errorf("%s is already stored with different content (size %d, sha256 %q; want size %d, sha256 %s): the registry is damaged, run `publish verify`", key, info.Size, info.SHA256, want.Size, want.SHA256)
	}
	return true, nil
}

// meter counts how far an upload body has been read and reports it (when
// report is set) at most every 250 ms, and at the end. Bytes read again
// after a rewind are counted again, capped at the total.
type meter struct {
	total  int64
	report func(done int64)
	done   atomic.Int64
	last   atomic.Int64 // unix nanos of the last report
}

func (m *meter) advance(n int, err error) {
	if m.report == nil {
		return
	}
	done := min(m.done.Add(int64(n)), m.total)
	now := time.Now().UnixNano()
	last := m.last.Load()
	if done == m.total || err != nil || now-last >= int64(250*time.Millisecond) && m.last.CompareAndSwap(last, now) {
		m.report(done)
	}
}

// fileBody is the body of a local file. It keeps the file's io.ReaderAt
// and io.Seeker so that backends can send parts in parallel or rewind for
// a retry; the store checks its digests.
type fileBody struct {
	f *os.File
	*meter
}

func (b *fileBody) Read(p []byte) (int, error) {
	n, err := b.f.Read(p)
	b.advance(n, err)
	return n, err
}

func (b *fileBody) ReadAt(p []byte, off int64) (int, error) {
	n, err := b.f.ReadAt(p, off)
	b.advance(n, err)
	return n, err
}

func (b *fileBody) Seek(offset int64, whence int) (int64, error) {
	return b.f.Seek(offset, whence)
}

// checkedStream is a body read once, front to back (no io.ReaderAt). It
// counts the bytes, and hashes them when h is set, and fails its last
// Read, instead of ending, when the stream ends short, runs long, has
// another sha256 or fails: the store then keeps nothing. err is the first
// such failure.
type checkedStream struct {
	r    io.Reader
	want catalog.FileRef
	name string
	h    hash.Hash
	n    int64
	err  error
	*meter
}

func (c *checkedStream) Read(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(b)
	if c.h != nil {
		c.h.Write(b[:n])
	}
	c.n += int64(n)
	c.advance(n, err)
	switch {
	case err != nil && err != io.EOF:
		c.err = fmt.Errorf("%s: %w", c.name, err)
	case c.n > c.want.Size:
		c.err = fmt.Errorf("%s is longer than the %d bytes its catalog says", c.name, c.want.Size)
	case err == io.EOF && c.n < c.want.Size:
		c.err = fmt.Errorf("%s is truncated: %d of %d bytes", c.name, c.n, c.want.Size)
	case err == io.EOF && c.h != nil:
		if got := digest.Hex(c.h); got != c.want.SHA256 {
			c.err = fmt.Errorf("%s has sha256 %s, its catalog says %s", c.name, got, c.want.SHA256)
		}
	}
	if c.err != nil {
		return n, c.err
	}
	return n, err
}
