package store

import (
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

// ValidatePrefix is ValidateKey for List prefixes: the empty prefix and a
// trailing slash are allowed.
func ValidatePrefix(prefix string) error {
	if err := key.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return nil
}
