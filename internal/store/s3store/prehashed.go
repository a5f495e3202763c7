package s3store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/incus-appliance/registry/internal/store"
)

// prehashed reports whether a Put can use the caller's part digests
// (PutOptions.PartSHA256) straight from a body with native random access.
func prehashed(body io.Reader, size int64, opts store.PutOptions) bool {
	_, ok := body.(io.ReaderAt)
	_, valid := partDigests(size, opts)
	return ok && valid
}

// partDigests decodes the caller's part digests when they fit: a part size
// S3 accepts and exactly one well-formed digest per part.
func partDigests(size int64, opts store.PutOptions) ([][]byte, bool) {
	if opts.PartSize < MinPartSize || opts.PartSize > maxSinglePut {
		return nil, false
	}
	n := (size + opts.PartSize - 1) / opts.PartSize
	if n == 0 || n > maxParts || int64(len(opts.PartSHA256)) != n {
		return nil, false
	}
	sums := make([][]byte, n)
	for i, d := range opts.PartSHA256 {
		b, err := hex.DecodeString(d)
		if err != nil || len(b) != 32 {
			return nil, false
		}
		sums[i] = b
	}
	return sums, true
}

// putPrehashed uploads a body whose part digests the caller computed when
// it hashed the body: parts go straight from ra (no buffering, no
// hashing here), Concurrency at a time, each with its digest, which the
// store verifies. The object is therefore exactly the bytes the caller
// hashed (a file changed since fails with ErrChecksumMismatch), or it
// never appears.
func (s *Store) putPrehashed(ctx context.Context, key, full string, ra io.ReaderAt, base, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := checkLength(ra, base, size); err != nil {
		return store.ObjectInfo{}, err
	}
	u, err := s.createUpload(ctx, full, opts.PartSize, opts)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	if err := u.sendPrehashed(ctx, ra, base, size, opts.PartSHA256); err != nil {
		return store.ObjectInfo{}, u.abort(ctx, err)
	}
	if err := store.BeforeCommit(ctx, opts); err != nil {
		return store.ObjectInfo{}, u.abort(ctx, err)
	}
	info, err := u.complete(ctx, key, size, opts.SHA256, opts)
	if err != nil {
		return store.ObjectInfo{}, u.abort(ctx, err)
	}
	return info, nil
}

// sendPrehashed uploads every part, Concurrency at a time, and returns the
// first error.
func (u *upload) sendPrehashed(ctx context.Context, ra io.ReaderAt, base, size int64, digests []string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range u.s.opts.Concurrency {
		wg.Go(func() {
			for i := range next {
				off := int64(i) * u.partSize
				n := min(u.partSize, size-off)
				sum, _ := hex.DecodeString(digests[i])
				if err := u.uploadPart(ctx, int32(i+1), io.NewSectionReader(ra, base+off, n), n, sum); err != nil {
					cancel(err)
				}
			}
		})
	}
	for i := range digests {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// checkLength makes sure the body holds exactly size bytes from base.
func checkLength(ra io.ReaderAt, base, size int64) error {
	var b [1]byte
	if n, _ := ra.ReadAt(b[:], base+size-1); n != 1 {
		return fmt.Errorf("%w: body is shorter than the declared %d bytes", store.ErrChecksumMismatch, size)
	}
	if n, err := ra.ReadAt(b[:], base+size); n != 0 || !errors.Is(err, io.EOF) {
		return store.SizeMismatch(size+1, size)
	}
	return nil
}
