// Package delta makes and checks VCDIFF deltas between two versions of an
// image root with xdelta3 (Debian package xdelta3), the format and tool the
// Incus daemon uses to apply `squashfs.vcdiff` items on image refresh.
//
// Make encodes a delta and proves it before anyone relies on it: decoding
// it against the base, the way a client does, must give the target byte
// for byte (same SHA-256).
package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/incus-appliance/registry/internal/digest"
)

// ErrNoXdelta3 is returned when xdelta3 is not on PATH.
var ErrNoXdelta3 = errors.New("xdelta3 is not installed (apt-get install xdelta3)")

// ErrMismatch is returned when a delta does not reproduce its target.
var ErrMismatch = errors.New("delta does not reproduce the target")

// Tool is the xdelta3 binary looked up on PATH.
const Tool = "xdelta3"

// Available reports ErrNoXdelta3 when xdelta3 cannot be run.
func Available() error {
	if _, err := exec.LookPath(Tool); err != nil {
		return ErrNoXdelta3
	}
	return nil
}

// Result is a delta file made by Make.
type Result struct {
	Path   string
	SHA256 string
	Size   int64
}

// Make encodes the delta that turns base into target, writes it to out and
// checks that decoding it against base gives a file of SHA-256 targetSHA256
// (the target's digest, known to the caller). The encoding is
// deterministic for one xdelta3 version (no application header: no file
// names or times inside), so publishers of the same pair usually make the
// same bytes.
func Make(ctx context.Context, base, target, out, targetSHA256 string) (Result, error) {
	if err := Available(); err != nil {
		return Result{}, err
	}
	args := []string{"-e", "-9", "-A", "-f"}
	if fi, err := os.Stat(base); err == nil {
		// A source window covering the whole base finds moved blocks
		// anywhere in it (the default window is 64 MiB).
		args = append(args, "-B", fmt.Sprint(sourceWindow(fi.Size())))
	}
	args = append(args, "-s", base, target, out)
	if err := run(ctx, nil, args...); err != nil {
		return Result{}, fmt.Errorf("xdelta3 encode: %w", err)
	}
	if err := Check(ctx, base, out, targetSHA256); err != nil {
		return Result{}, err
	}
	sum, size, err := fileSHA256(out)
	if err != nil {
		return Result{}, err
	}
	return Result{Path: out, SHA256: sum, Size: size}, nil
}

// sourceWindow is xdelta3's -B for a base of size bytes: the size rounded
// up to a power of two, between 64 MiB (the default) and 1 GiB.
func sourceWindow(size int64) int64 {
	w := int64(64 << 20)
	for w < size && w < 1<<30 {
		w <<= 1
	}
	return w
}

// Check decodes delta against base as a client does (xdelta3 -d -s) and
// fails with ErrMismatch unless the result's SHA-256 is wantSHA256.
func Check(ctx context.Context, base, delta, wantSHA256 string) error {
	got, _, err := Decode(ctx, base, delta, io.Discard)
	if err != nil {
		return err
	}
	if got != wantSHA256 {
		return fmt.Errorf("%w: decoding gives sha256 %s, want %s", ErrMismatch, got, wantSHA256)
	}
	return nil
}

// Decode applies delta to base, streams the result to w and returns its
// SHA-256 and size.
func Decode(ctx context.Context, base, delta string, w io.Writer) (sha string, size int64, err error) {
	if err := Available(); err != nil {
		return "", 0, err
	}
	h := digest.New()
	cw := &countWriter{w: io.MultiWriter(h, w)}
	if err := run(ctx, cw, "-d", "-c", "-s", base, delta); err != nil {
		return "", 0, fmt.Errorf("%w: xdelta3 decode: %w", ErrMismatch, err)
	}
	return digest.Hex(h), cw.n, nil
}

// run runs xdelta3; its stderr's first line explains a failure.
func run(ctx context.Context, stdout io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, Tool, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return ErrNoXdelta3
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg == "" {
			return err
		}
		return fmt.Errorf("%w: %s", err, msg)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := digest.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return digest.Hex(h), n, nil
}
