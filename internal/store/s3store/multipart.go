package s3store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/incus-appliance/registry/internal/store"
)

// abortTimeout bounds AbortMultipartUpload, which runs on a fresh context
// so that a cancelled Put still cleans up.
const abortTimeout = 30 * time.Second

// upload is one multipart upload in progress.
type upload struct {
	s        *Store
	full     string  // S3 key
	id       *string // upload ID
	partSize int64

	// digests, when set, are the parts' SHA-256s, given by the caller.
	digests [][]byte

	mu    sync.Mutex
	parts []types.CompletedPart
}

// part is a filled buffer on its way to a worker.
type part struct {
	num int32
	buf []byte
}

// partSize is opts.PartSize, grown (to whole MiB) when size would need
// more than S3's 10,000 parts.
func partSize(size, min int64) int64 {
	const mib = 1 << 20
	need := (size + maxParts - 1) / maxParts
	need = (need + mib - 1) / mib * mib
	return max(min, need)
}

// putMultipart uploads src, read once in order into part buffers. When the
// caller gave part digests (PutOptions.PartSHA256, e.g. from a build's
// record), the parts have the caller's size and go with those digests,
// which the store checks, instead of being hashed here; the whole body's
// SHA-256 is computed while reading either way.
func (s *Store) putMultipart(ctx context.Context, key, full string, src io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	ps, digests := partSize(size, s.opts.PartSize), [][]byte(nil)
	if d, ok := partDigests(size, opts); ok {
		ps, digests = opts.PartSize, d
	}
	u, err := s.createUpload(ctx, full, ps, opts)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	u.digests = digests
	info, err := u.run(ctx, key, src, size, opts)
	if err != nil {
		return store.ObjectInfo{}, u.abort(ctx, err)
	}
	return info, nil
}

// createUpload starts a multipart upload with SHA-256 part checksums.
func (s *Store) createUpload(ctx context.Context, full string, partSize int64, opts store.PutOptions) (*upload, error) {
	in := &s3.CreateMultipartUploadInput{
		Bucket:            &s.bucket,
		Key:               &full,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}
	if opts.SHA256 != "" {
		// Verified before Complete: if it is wrong, no object appears.
		in.Metadata = map[string]string{metaSHA256: opts.SHA256}
	}
	setAttributes(&in.ContentType, &in.CacheControl, opts)
	created, err := s.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return nil, err
	}
	return &upload{s: s, full: full, id: created.UploadId, partSize: partSize}, nil
}

// run uploads the parts, checks the body and completes the upload.
func (u *upload) run(ctx context.Context, key string, src io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	sum, err := u.sendParts(ctx, src, size)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	digest := hex.EncodeToString(sum)
	if err := store.CheckDigest(digest, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := store.BeforeCommit(ctx, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	return u.complete(ctx, key, size, digest, opts)
}

// complete completes the upload from the parts sent, carrying the write's
// condition.
func (u *upload) complete(ctx context.Context, key string, size int64, digest string, opts store.PutOptions) (store.ObjectInfo, error) {
	slices.SortFunc(u.parts, func(a, b types.CompletedPart) int {
		return cmp.Compare(aws.ToInt32(a.PartNumber), aws.ToInt32(b.PartNumber))
	})
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          &u.s.bucket,
		Key:             &u.full,
		UploadId:        u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
	}
	setCondition(&in.IfNoneMatch, &in.IfMatch, opts)
	out, err := u.s.client.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	return putInfo(key, size, aws.ToString(out.ETag), digest, opts), nil
}

// sendParts reads src sequentially into pooled part buffers, hashing
// everything it reads, while Concurrency workers upload the parts. It
// returns the body's SHA-256, or the first error (a failed part, a bad
// body, or the cancelled ctx).
func (u *upload) sendParts(ctx context.Context, src io.Reader, size int64) ([]byte, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	conc := u.s.opts.Concurrency
	pool := newBufPool(conc+1, u.partSize)
	jobs := make(chan part) // unbuffered: the reader holds one buffer, each worker one
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for p := range jobs {
				if ctx.Err() == nil {
					if err := u.sendPart(ctx, p); err != nil {
						cancel(err)
					}
				}
				pool.put(p.buf)
			}
		})
	}
	sum, err := u.read(ctx, store.ContextReader(ctx, src), size, jobs, pool)
	close(jobs)
	if err != nil {
		cancel(err)
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return sum, nil
}

// read fills part buffers from src and hands them to the workers.
func (u *upload) read(ctx context.Context, src io.Reader, size int64, jobs chan<- part, pool *bufPool) ([]byte, error) {
	h := sha256.New()
	var done int64
	for num := int32(1); done < size; num++ {
		buf, err := pool.get(ctx)
		if err != nil {
			return nil, err
		}
		buf = buf[:min(u.partSize, size-done)]
		n, err := io.ReadFull(src, buf)
		h.Write(buf[:n])
		done += int64(n)
		if err != nil {
			pool.put(buf)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, store.SizeMismatch(done, size)
			}
			return nil, err
		}
		select {
		case jobs <- part{num: num, buf: buf}:
		case <-ctx.Done():
			pool.put(buf)
			return nil, context.Cause(ctx)
		}
	}
	if err := expectEOF(src, size); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// sendPart uploads one buffered part with its own SHA-256 checksum.
func (u *upload) sendPart(ctx context.Context, p part) error {
	if u.digests != nil {
		return u.uploadPart(ctx, p.num, bytes.NewReader(p.buf), int64(len(p.buf)), u.digests[p.num-1])
	}
	sum := sha256.Sum256(p.buf)
	return u.uploadPart(ctx, p.num, bytes.NewReader(p.buf), int64(len(p.buf)), sum[:])
}

// uploadPart sends one part with its SHA-256 checksum, which the store
// verifies. The payload itself is not signed (UNSIGNED-PAYLOAD): the
// signed checksum header already binds the bytes, and the store then
// hashes each part once instead of twice.
func (u *upload) uploadPart(ctx context.Context, num int32, body io.ReadSeeker, n int64, sum []byte) error {
	checksum := base64.StdEncoding.EncodeToString(sum)
	sent, err := u.s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:         &u.s.bucket,
		Key:            &u.full,
		UploadId:       u.id,
		PartNumber:     aws.Int32(num),
		Body:           body,
		ContentLength:  aws.Int64(n),
		ChecksumSHA256: &checksum,
	}, unsignedPayload)
	if err != nil {
		return fmt.Errorf("part %d: %w", num, err)
	}
	out := types.CompletedPart{PartNumber: aws.Int32(num), ETag: sent.ETag, ChecksumSHA256: &checksum}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.parts = append(u.parts, out)
	return nil
}

// unsignedPayload signs a request without hashing its body.
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

// abort aborts the upload on a fresh context and returns cause, joined
// with the abort's own failure if any.
func (u *upload) abort(ctx context.Context, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := u.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &u.s.bucket, Key: &u.full, UploadId: u.id,
	})
	if code, status := errorCode(err); err != nil && code != "NoSuchUpload" && status != http.StatusNotFound {
		// %v: the abort's failure is extra information, not the
		// error to classify.
		return errors.Join(cause, fmt.Errorf("abort multipart upload %s: %v", aws.ToString(u.id), err))
	}
	return cause
}

// bufPool hands out at most n buffers of size bytes, allocated lazily and
// recycled: the memory bound of one multipart upload.
type bufPool struct {
	free      chan []byte
	allocated int // only the reader goroutine calls get
	size      int64
}

func newBufPool(n int, size int64) *bufPool {
	return &bufPool{free: make(chan []byte, n), size: size}
}

func (p *bufPool) get(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.free:
		return b, nil
	default:
	}
	if p.allocated < cap(p.free) {
		p.allocated++
		return make([]byte, p.size), nil
	}
	select {
	case b := <-p.free:
		return b, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (p *bufPool) put(b []byte) { p.free <- b[:cap(b)] }
