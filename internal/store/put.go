package store

import (
	"context"
	"errors"
	"fmt"
)

// The checks of Store.Put every backend makes in the same words: its
// arguments before the body is read, the body once read.

// CheckPut checks a Put before its body is read, as the contract says: a
// negative size or both IfAbsent and IfMatch are a plain error, a done
// ctx is its error.
func CheckPut(ctx context.Context, size int64, opts PutOptions) error {
	switch {
	case opts.IfAbsent && opts.IfMatch != "":
		return errors.New("IfAbsent and IfMatch are mutually exclusive")
	case size < 0:
		return fmt.Errorf("negative size %d", size)
	}
	return ctx.Err()
}

// SizeMismatch is the ErrChecksumMismatch of a body of got bytes declared
// as want bytes (got > want: longer, by any amount).
func SizeMismatch(got, want int64) error {
	if got > want {
		return fmt.Errorf("%w: body is longer than the declared %d bytes", ErrChecksumMismatch, want)
	}
	return fmt.Errorf("%w: body is %d bytes, declared %d", ErrChecksumMismatch, got, want)
}

// CheckDigest checks a body's SHA-256 (lowercase hex) against
// opts.SHA256, when given.
func CheckDigest(digest string, opts PutOptions) error {
	if opts.SHA256 != "" && opts.SHA256 != digest {
		return fmt.Errorf("%w: body has sha256 %s, want %s", ErrChecksumMismatch, digest, opts.SHA256)
	}
	return nil
}

// CheckBody checks a body read in full (up to size+1 bytes, enough to see
// that it is too long): its length n against size, its digest against
// opts.SHA256.
func CheckBody(n, size int64, digest string, opts PutOptions) error {
	if n != size {
		return SizeMismatch(n, size)
	}
	return CheckDigest(digest, opts)
}
