package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/incus-appliance/registry/internal/store"
)

// Put stores the body with one PutObject or a multipart upload; see the
// package documentation. A body with io.ReaderAt is read at offsets from
// its current io.Seeker position (else from 0), leaving that position
// alone; an io.Seeker alone is seeked and read; any other body is read
// once, sequentially.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	info, err := s.put(ctx, key, body, size, opts)
	if err != nil {
		return store.ObjectInfo{}, mapErr("put", key, err)
	}
	return info, nil
}

func (s *Store) put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	if err := store.CheckPut(ctx, size, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	ra, base, seekable := readerAt(body)
	if size > s.opts.MultipartThreshold && prehashed(body, size, opts) {
		return s.putPrehashed(ctx, key, full, ra, base, size, opts)
	}
	if size > s.opts.MultipartThreshold || !seekable && size > s.opts.PartSize {
		src := body
		if seekable {
			src = io.NewSectionReader(ra, base, 1<<62)
		}
		return s.putMultipart(ctx, key, full, src, size, opts)
	}
	var payload io.ReadSeeker
	var sum []byte
	if seekable {
		payload, sum, err = hashSection(ctx, ra, base, size)
	} else {
		payload, sum, err = buffer(ctx, body, size)
	}
	if err != nil {
		return store.ObjectInfo{}, err
	}
	return s.putObject(ctx, key, full, payload, sum, size, opts)
}

// putObject sends a checked body of size bytes with SHA-256 sum in one
// PutObject.
func (s *Store) putObject(ctx context.Context, key, full string, payload io.ReadSeeker, sum []byte, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	digest := hex.EncodeToString(sum)
	if err := store.CheckDigest(digest, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := store.BeforeCommit(ctx, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	in := &s3.PutObjectInput{
		Bucket:         &s.bucket,
		Key:            &full,
		Body:           payload,
		ContentLength:  aws.Int64(size),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum)),
		Metadata:       map[string]string{metaSHA256: digest},
	}
	setAttributes(&in.ContentType, &in.CacheControl, opts)
	setCondition(&in.IfNoneMatch, &in.IfMatch, opts)
	out, err := s.client.PutObject(ctx, in, withPayloadHash(digest))
	if err != nil {
		return store.ObjectInfo{}, err
	}
	return putInfo(key, size, aws.ToString(out.ETag), digest, opts), nil
}

// putInfo describes a new object. PUT responses carry no Last-Modified:
// ModTime is the client's clock when the store answered.
func putInfo(key string, size int64, etag, digest string, opts store.PutOptions) store.ObjectInfo {
	return store.ObjectInfo{Key: key, Size: size, ETag: etag, ModTime: time.Now(), SHA256: digest,
		ContentType: opts.ContentType, CacheControl: opts.CacheControl}
}

func setAttributes(contentType, cacheControl **string, opts store.PutOptions) {
	if opts.ContentType != "" {
		*contentType = aws.String(opts.ContentType)
	}
	if opts.CacheControl != "" {
		*cacheControl = aws.String(opts.CacheControl)
	}
}

// setCondition sets exactly one condition header, or none.
func setCondition(ifNoneMatch, ifMatch **string, opts store.PutOptions) {
	switch {
	case opts.IfAbsent:
		*ifNoneMatch = aws.String("*")
	case opts.IfMatch != "":
		*ifMatch = aws.String(opts.IfMatch)
	}
}

// readerAt returns body's random access and the offset of its current
// position, when it has io.ReaderAt (position from io.Seeker, else 0) or
// io.Seeker alone. A body whose Seek fails (an *os.File on a pipe) is a
// stream.
func readerAt(body io.Reader) (ra io.ReaderAt, base int64, ok bool) {
	if sk, isSeeker := body.(io.Seeker); isSeeker {
		var err error
		if base, err = sk.Seek(0, io.SeekCurrent); err != nil {
			return nil, 0, false
		}
	}
	if ra, ok := body.(io.ReaderAt); ok {
		return ra, base, true
	}
	if rs, ok := body.(io.ReadSeeker); ok {
		return seekReaderAt{rs}, base, true
	}
	return nil, 0, false
}

// seekReaderAt gives an io.ReadSeeker io.ReaderAt, for sequential use only.
type seekReaderAt struct{ rs io.ReadSeeker }

func (s seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if _, err := s.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(s.rs, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

// hashSection checks that ra holds exactly size bytes from base and
// returns a reader over them with their SHA-256.
func hashSection(ctx context.Context, ra io.ReaderAt, base, size int64) (io.ReadSeeker, []byte, error) {
	h := sha256.New()
	n, err := io.Copy(h, store.ContextReader(ctx, io.NewSectionReader(ra, base, size)))
	if err != nil {
		return nil, nil, err
	}
	if n < size {
		return nil, nil, store.SizeMismatch(n, size)
	}
	var one [1]byte
	if m, err := ra.ReadAt(one[:], base+size); m > 0 {
		return nil, nil, store.SizeMismatch(size+1, size)
	} else if err != nil && err != io.EOF {
		return nil, nil, err
	}
	return io.NewSectionReader(ra, base, size), h.Sum(nil), nil
}

// buffer reads exactly size bytes of body into memory.
func buffer(ctx context.Context, body io.Reader, size int64) (io.ReadSeeker, []byte, error) {
	buf := make([]byte, size)
	r := store.ContextReader(ctx, body)
	if n, err := io.ReadFull(r, buf); err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, nil, store.SizeMismatch(int64(n), size)
	} else if err != nil {
		return nil, nil, err
	}
	if err := expectEOF(r, size); err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(buf)
	return bytes.NewReader(buf), sum[:], nil
}

// expectEOF checks that r, which yielded size bytes, has no more.
func expectEOF(r io.Reader, size int64) error {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	switch {
	case n > 0:
		return store.SizeMismatch(size+1, size)
	case err == io.EOF:
		return nil
	default:
		return err
	}
}

// withPayloadHash hands the SigV4 signer the body's SHA-256 (which Put
// computed anyway), so that the SDK does not read the body once more to
// hash it, and the signature covers the body over HTTPS too (where the SDK
// would otherwise send UNSIGNED-PAYLOAD).
func withPayloadHash(hexSum string) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("s3store:PayloadHash",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
					middleware.FinalizeOutput, middleware.Metadata, error) {
					return next.HandleFinalize(v4.SetPayloadHash(ctx, hexSum), in)
				}), middleware.Before)
		})
	}
}
