package store

import (
	"errors"
	"fmt"

	"github.com/incus-appliance/registry/internal/key"
)

// MaxKeyLen is the longest key any backend accepts (S3's limit).
const MaxKeyLen = key.MaxLen

// ValidateKey reports whether k is a registry key, by the one rule of
// package key (which the catalog and edgeproxy use too): non-empty, at most
// MaxKeyLen bytes, slash-separated segments of ASCII letters, digits and
// . _ - : + ~ @ =, no segment empty or starting with '.' (dot-names are
// reserved for backend internals such as temp files and locks).
// The error wraps ErrInvalidKey and names the key.
func ValidateKey(k string) error {
	if err := key.Check(k); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return nil
}

// CheckPut checks the arguments of Store.Put every backend must refuse
// with a plain error, as the contract says: a negative size, and both
// IfAbsent and IfMatch.
func CheckPut(size int64, opts PutOptions) error {
	switch {
	case opts.IfAbsent && opts.IfMatch != "":
		return errors.New("IfAbsent and IfMatch are mutually exclusive")
	case size < 0:
		return fmt.Errorf("negative size %d", size)
	}
	return nil
}

// ValidatePrefix is ValidateKey for List prefixes: the empty prefix and a
// trailing slash are allowed.
func ValidatePrefix(prefix string) error {
	if err := key.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return nil
}
