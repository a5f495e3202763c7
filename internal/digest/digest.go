// Package digest is the one home of the registry's hashes: what a SHA-256
// looks like in a catalog or a store, and the image fingerprint Incus
// computes, sha256(metadata bytes followed by root bytes).
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
)

// IsSHA256 reports whether s is a SHA-256 as the registry writes it: 64
// lowercase hex digits. Backends use it so that they never report foreign
// metadata as a digest.
func IsSHA256(s string) bool {
	return len(s) == 64 && IsLowerHex(s)
}

// IsLowerHex reports whether s is made of lowercase hex digits only (the
// empty string is); a fingerprint prefix is such a string.
func IsLowerHex(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Fingerprint computes an image's fingerprint: write the metadata file's
// bytes, then the root's (or, for a unified image, the one file's), then
// read Hex. It is a hash.Hash, so it can sit beside a file's own hash in an
// io.MultiWriter or a parallel hasher.
type Fingerprint struct{ hash.Hash }

// NewFingerprint returns an empty Fingerprint.
func NewFingerprint() Fingerprint { return Fingerprint{sha256.New()} }

// Hex returns the fingerprint of the bytes written so far, lowercase hex.
func (f Fingerprint) Hex() string { return Hex(f.Hash) }

// New returns an empty SHA-256, the one hash the registry uses (files,
// objects, records); read it with Hex.
func New() hash.Hash { return sha256.New() }

// Hex returns h's digest as lowercase hex.
func Hex(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// Of returns the SHA-256 of the parts one after the other, lowercase hex:
// Of(meta, root) is the fingerprint of an image held in memory.
func Of(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return Hex(h)
}

// OfReader reads r to its end and returns the SHA-256 of what it read,
// lowercase hex, and how many bytes that was. The error is r's.
func OfReader(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return Hex(h), n, err
}
