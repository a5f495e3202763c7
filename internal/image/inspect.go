package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/incus-appliance/registry/internal/osarch"

	"github.com/incus-appliance/registry/internal/digest"
)

// Inspect validates the split image made of the metadata tarball at
// metadataPath and the root at rootPath and returns what it found. Each
// file is read exactly once, front to back, so either may be a pipe.
//
// Problems with a file are returned as *Error with a one-line message
// naming the file, the problem and what to do; a cancelled ctx stops
// Inspect between chunks with an error wrapping ctx.Err().
func Inspect(ctx context.Context, metadataPath, rootPath string, opts Options) (*Image, error) {
	var want string
	if opts.Arch != "" {
		a, err := osarch.Normalize(opts.Arch)
		if err != nil {
			return nil, fmt.Errorf("--arch: %w", err)
		}
		want = a
	}
	combined := digest.NewFingerprint()
	md, mf, err := readMetadata(ctx, metadataPath, combined, opts.Progress)
	if err != nil {
		return nil, err
	}
	if want != "" && md.Arch != want {
		return nil, &Error{"metadata", metadataPath, fmt.Errorf(
			"%w: metadata.yaml says %s, --arch says %s; publish the %s build of the image or fix --arch",
			ErrArchMismatch, md.Arch, want, want)}
	}
	root, kind, err := readRoot(ctx, rootPath, combined, opts.Progress, opts.PartSize)
	if err != nil {
		return nil, err
	}
	return &Image{
		Metadata:     md,
		MetadataFile: mf,
		Root:         root,
		RootKind:     kind,
		Fingerprint:  combined.Hex(),
	}, nil
}

// open opens one input of Inspect and returns it with its size, or -1 if
// the size is not known in advance (pipes).
func open(role, path, expect string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		hint := "check the path"
		if errors.Is(err, fs.ErrPermission) {
			hint = "check the file's permissions"
		}
		return nil, 0, &Error{role, path, fmt.Errorf("cannot open: %w; %s", err, hint)}
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, &Error{role, path, fmt.Errorf("cannot stat: %w", err)}
	}
	if st.IsDir() {
		f.Close()
		return nil, 0, &Error{role, path, fmt.Errorf("is a directory; pass the %s inside it", expect)}
	}
	if !st.Mode().IsRegular() {
		return f, -1, nil
	}
	return f, st.Size(), nil
}

// progressInterval is the minimum time between two Progress calls for a file.
const progressInterval = 250 * time.Millisecond

// ticker rate-limits Options.Progress for one file.
type ticker struct {
	fn    func(path string, done, total int64)
	path  string
	total int64
	last  time.Time
}

func newTicker(fn func(string, int64, int64), path string, total int64) *ticker {
	return &ticker{fn: fn, path: path, total: total, last: time.Now()}
}

// tick reports done bytes if the last report is old enough.
func (t *ticker) tick(done int64) {
	if t.fn == nil {
		return
	}
	if now := time.Now(); now.Sub(t.last) >= progressInterval {
		t.last = now
		t.fn(t.path, done, t.total)
	}
}

// finish reports the end of the file: done == total.
func (t *ticker) finish(done int64) {
	if t.fn != nil {
		t.fn(t.path, done, done)
	}
}
