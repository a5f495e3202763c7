// Package key is the one rule for the object keys of a registry: the paths
// a SimpleStreams catalog may reference (images/<fp>/rootfs.squashfs,
// images/<fp>.incus.tar.xz, images/debian/bookworm/amd64/default/20261129_05:24/rootfs.squashfs,
// streams/v1/images.json) and nothing that could escape a folder or mean
// something else to a file system, an HTTP server or an S3 store.
//
// The catalog refuses an item whose path breaks it, every store refuses
// such a key, and edgeproxy refuses such a request before any origin call.
package key

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLen is the longest key (S3's limit, in bytes).
const MaxLen = 1024

// ErrInvalid is wrapped by every error Check returns.
var ErrInvalid = errors.New("invalid key")

// Check reports whether k is a registry key: non-empty, at most MaxLen
// bytes, slash-separated segments made of ASCII letters, digits and
// . _ - : + ~ @ =, where no segment is empty, "." or "..", or starts with
// '.' (dot-names are reserved for backend internals such as temp files and
// locks). So there is no leading or trailing slash, no backslash, no
// percent-encoding, no space, control byte or non-ASCII byte.
func Check(k string) error {
	if k == "" {
		return fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(k) > MaxLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxLen)
	}
	for _, seg := range strings.Split(k, "/") {
		if seg == "" {
			return fmt.Errorf("%w %q: empty path segment", ErrInvalid, k)
		}
		if seg[0] == '.' {
			return fmt.Errorf("%w %q: segment %q starts with '.'", ErrInvalid, k, seg)
		}
		for _, c := range []byte(seg) {
			if !isChar(c) {
				return fmt.Errorf("%w %q: character %q not allowed", ErrInvalid, k, c)
			}
		}
	}
	return nil
}

// CheckPrefix is Check for listing prefixes: the empty prefix and a
// trailing slash are allowed.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return Check(strings.TrimSuffix(prefix, "/"))
}

func isChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("._-:+~@=", c) >= 0
}
