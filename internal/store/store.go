// Package store is the object-storage contract the registry is written
// against: a flat namespace of immutable-or-conditionally-replaced objects,
// addressed by slash-separated keys relative to the registry root.
//
// Backends (memstore, dirstore, and the S3 backend) implement Store and map
// their native errors onto the sentinel errors below in one place each; the
// conformance suite in storetest holds every backend to the same promises.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Backends wrap them (test with errors.Is).
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPreconditionFailed: a conditional Put found the object present
	// (IfAbsent) or carrying a different ETag (IfMatch).
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrChecksumMismatch: the bytes received do not match
	// PutOptions.SHA256/Size; nothing was stored.
	ErrChecksumMismatch = errors.New("checksum mismatch")
	// ErrConflict: a conditional write collided with another one in
	// progress (S3's 409 ConditionalRequestConflict); re-read and retry.
	ErrConflict = errors.New("conflicting concurrent write")
	// ErrNotImplemented: the backend does not support the operation or
	// condition asked for (e.g. an S3-compatible store answering 501 to a
	// conditional write).
	ErrNotImplemented = errors.New("not implemented by the store")
	// ErrInvalidKey: the key is empty, absolute, or holds "." / ".."
	// segments, empty segments, backslashes or control characters.
	ErrInvalidKey = errors.New("invalid key")
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key string
	// Size in bytes.
	Size int64
	// ETag is an opaque version token: it changes whenever the object's
	// content changes, and is passed back verbatim in PutOptions.IfMatch.
	ETag string
	// ModTime is when the current content was written.
	ModTime time.Time
	// SHA256 is the lowercase hex SHA-256 of the content when the backend
	// knows it (it was given or verified at Put time, or computed while
	// answering); empty otherwise. When set, it is always correct.
	SHA256 string
	// ContentType and CacheControl as given at Put time (may be empty).
	ContentType  string
	CacheControl string
}

// PutOptions are the conditions and attributes of a Put.
type PutOptions struct {
	// IfAbsent stores the object only if the key does not exist yet;
	// otherwise Put returns ErrPreconditionFailed. (S3: If-None-Match: *.)
	IfAbsent bool
	// IfMatch, when non-empty, stores the object only if the current
	// object's ETag equals it; otherwise Put returns ErrPreconditionFailed,
	// or ErrNotFound when the key does not exist. (S3: If-Match.)
	// IfAbsent and IfMatch are mutually exclusive.
	IfMatch string
	// ContentType and CacheControl are stored with the object and served
	// with it.
	ContentType  string
	CacheControl string
	// SHA256 (lowercase hex), when non-empty, is the expected digest of
	// the body. A mismatch returns ErrChecksumMismatch and the object
	// never becomes visible. (The body's length is checked against Put's
	// size argument whether or not SHA256 is given.)
	SHA256 string
	// PartSHA256, when set with PartSize, holds the SHA-256 (lowercase
	// hex) of each consecutive PartSize-byte chunk of the body (the last
	// may be shorter), computed when the caller hashed the body. Backends
	// that upload in parts may use this part size and send each part with
	// its digest, so the store itself checks every byte against what was
	// hashed, without hashing the body again; others ignore it.
	PartSHA256 []string
	PartSize   int64
	// BeforeCommit, when set, is called once the whole body has been read
	// and checked (size, SHA256, part digests), right before the object
	// becomes visible; its error aborts the Put and nothing is stored. It
	// runs outside any lock of the store, so it may use the store itself
	// (the registry records its publish intent there). A body that fails
	// its last Read never reaches it.
	BeforeCommit func(ctx context.Context) error
}

// BeforeCommit runs opts.BeforeCommit, if any: the helper backends call.
func BeforeCommit(ctx context.Context, opts PutOptions) error {
	if opts.BeforeCommit == nil {
		return nil
	}
	return opts.BeforeCommit(ctx)
}

// Store is the object-storage contract. Keys are slash-separated relative
// paths ("streams/v1/images.json"); see ValidateKey. All methods are safe
// for concurrent use, from several goroutines and (where the backend is
// shared, like a directory or a bucket) several processes.
type Store interface {
	// Get opens the object for reading. The reader yields exactly the
	// content described by the returned ObjectInfo (a concurrent Put never
	// makes a reader see a mix). Missing key: ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)

	// Stat returns the object's info without its content.
	// Missing key: ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// Put stores size bytes read from body under key, atomically: readers
	// see either the previous object or the complete new one, never a
	// partial write. size must be the exact body length: a shorter or
	// longer body fails with ErrChecksumMismatch, a negative size or both
	// IfAbsent and IfMatch with a plain error. Failed condition:
	// ErrPreconditionFailed (IfMatch on a missing key: ErrNotFound); digest
	// mismatch: ErrChecksumMismatch; a done ctx: its error (wrapped). On
	// any error nothing is stored.
	// Backends may use io.ReaderAt / io.Seeker on body when available.
	Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (ObjectInfo, error)

	// List returns every object whose key starts with prefix (a plain
	// string prefix, as in S3: "images" matches "images2/x" too), sorted
	// by key. An empty result is not an error. An invalid prefix (see
	// ValidatePrefix) returns ErrInvalidKey.
	//
	// List fills Key, Size and ModTime; ETag, SHA256 and attributes only
	// when the backend has them without reading the object.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)

	// Delete removes the object. Deleting a missing key is not an error
	// (S3 semantics), so retries are safe.
	Delete(ctx context.Context, key string) error

	// Close releases resources held by the backend.
	Close() error
}

// RangeReader is implemented by backends that can read part of an object
// without fetching the rest (S3's ranged GET). Backends whose Get already
// returns an io.ReadSeeker (a local file) need not implement it; a
// backend has one or the other.
type RangeReader interface {
	// GetRange returns length bytes of key starting at offset. When etag
	// is non-empty the read succeeds only while the object still has
	// that ETag (ErrPreconditionFailed otherwise), so two ranges of one
	// response never come from two versions. Missing key: ErrNotFound;
	// invalid key: ErrInvalidKey; a negative offset or a length below 1:
	// a plain error.
	GetRange(ctx context.Context, key string, offset, length int64, etag string) (io.ReadCloser, error)
}
