package store

import (
	"fmt"
	"strings"
)

// MaxKeyLen is the longest key any backend accepts (S3's limit).
const MaxKeyLen = 1024

// ValidateKey reports whether key is a registry key: non-empty, at most
// MaxKeyLen bytes, slash-separated segments made of ASCII letters, digits,
// '.', '_' and '-', where no segment is empty or starts with '.' (dot-names
// are reserved for backend internals such as temp files and locks).
// The error wraps ErrInvalidKey and names the key.
func ValidateKey(key string) error {
	if err := validateKey(key); err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, err)
	}
	return nil
}

func validateKey(key string) error {
	if key == "" {
		return fmt.Errorf("empty")
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("longer than %d bytes", MaxKeyLen)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" {
			return fmt.Errorf("empty path segment")
		}
		if seg[0] == '.' {
			return fmt.Errorf("segment %q starts with '.'", seg)
		}
		for _, c := range []byte(seg) {
			if !isKeyChar(c) {
				return fmt.Errorf("character %q not allowed", c)
			}
		}
	}
	return nil
}

// ValidatePrefix is ValidateKey for List prefixes: the empty prefix and a
// trailing slash are allowed.
func ValidatePrefix(prefix string) error {
	p := strings.TrimSuffix(prefix, "/")
	if p == "" && prefix == "" {
		return nil
	}
	return ValidateKey(p)
}

func isKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// IsSHA256 reports whether s is a lowercase hex SHA-256 (64 digits), so
// that backends never report foreign metadata as a digest.
func IsSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
