package image

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// ErrArchMismatch is wrapped by the error Inspect returns when the
// architecture in metadata.yaml disagrees with Options.Arch.
var ErrArchMismatch = errors.New("architecture mismatch")

// Error is the error Inspect returns for a problem with one of its files.
// Its message is one line: role, path, problem and what to do, e.g.
//
//	metadata /p/incus.tar.xz: metadata.yaml: missing required field "properties.os"; ...
type Error struct {
	Role string // "metadata" or "rootfs"
	Path string // the path passed to Inspect
	Err  error  // the problem; errors.Is/As see through to it
}

// Error returns the one-line message.
func (e *Error) Error() string {
	return oneLine(e.Role + " " + e.Path + ": " + e.Err.Error())
}

// Unwrap returns the underlying problem.
func (e *Error) Unwrap() error { return e.Err }

// oneLine folds a possibly multi-line message (yaml errors are) into one.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return strings.Join(parts, "; ")
}

var (
	xzMagic       = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	squashfsMagic = []byte("hsqs")
	qcow2Magic    = []byte("QFI\xfb")
)

// isTarHeader reports whether b starts with a POSIX/GNU tar header.
func isTarHeader(b []byte) bool {
	return len(b) >= 262 && string(b[257:262]) == "ustar"
}

// sniff describes what a file starting with head looks like, for error
// messages: `starts with "PK\x03\x04"; this looks like a zip archive`.
func sniff(head []byte) string {
	s := fmt.Sprintf("starts with %q", head[:min(len(head), 4)])
	var what string
	switch {
	case bytes.HasPrefix(head, squashfsMagic):
		what = "a squashfs image"
	case bytes.HasPrefix(head, qcow2Magic):
		what = "a qcow2 disk image"
	case bytes.HasPrefix(head, xzMagic):
		what = "an xz file"
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		what = "a gzip file"
	case bytes.HasPrefix(head, []byte("BZh")):
		what = "a bzip2 file"
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		what = "a zstd file"
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		what = "a zip archive"
	case isTarHeader(head):
		what = "an uncompressed tar archive"
	}
	if what != "" {
		s += "; this looks like " + what
	}
	return s
}
