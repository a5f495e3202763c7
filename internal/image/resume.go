package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/incus-appliance/registry/internal/osarch"

	"github.com/incus-appliance/registry/internal/digest"
)

// ErrChanged is wrapped by the errors that say a file no longer matches
// its Record: Resume's (before anything is read) and a Stream's (while the
// root is read).
var ErrChanged = errors.New("changed since its digests were recorded")

// Resume returns the image rec describes without reading the root: the
// metadata tarball is read and validated as Inspect does (it is small) and
// must have the recorded SHA-256; the root's size and modification time
// must be the recorded ones. The root's digests and the fingerprint are
// the record's (whose integrity ReadRecord checked): the root is not
// proven yet. Upload it only through the returned Stream, with the
// recorded SHA-256 and part digests as the store's expected digests: every
// store checks them while it reads the body, before the object becomes
// visible, so a root changed behind the record's back is refused then.
// (The fingerprint needs no check of its own: it is sha256(metadata, root)
// and both files are checked against their recorded digests.)
//
// Any mismatch found here is an error wrapping ErrChanged (a missing
// file: the os error); the caller then inspects the files instead.
func Resume(ctx context.Context, metadataPath, rootPath string, rec *Record, opts Options) (*Image, *Stream, error) {
	for _, f := range []struct {
		role, path string
		rec        RecordedFile
	}{{"metadata", metadataPath, rec.Metadata}, {"rootfs", rootPath, rec.Root}} {
		if err := f.rec.unchanged(f.path); err != nil {
			return nil, nil, &Error{f.role, f.path, fmt.Errorf("%w: %w", ErrChanged, err)}
		}
	}
	md, mf, err := readMetadata(ctx, metadataPath, digest.NewFingerprint(), opts.Progress) // the fingerprint is recorded
	if err != nil {
		return nil, nil, err
	}
	if mf.SHA256 != rec.Metadata.SHA256 {
		return nil, nil, &Error{"metadata", metadataPath, fmt.Errorf("%w: its SHA-256 is not the recorded one", ErrChanged)}
	}
	if opts.Arch != "" {
		want, err := osarch.Normalize(opts.Arch)
		if err != nil {
			return nil, nil, fmt.Errorf("--arch: %w", err)
		}
		if md.Arch != want {
			return nil, nil, &Error{"metadata", metadataPath, fmt.Errorf(
				"%w: metadata.yaml says %s, --arch says %s; publish the %s build of the image or fix --arch",
				ErrArchMismatch, md.Arch, want, want)}
		}
	}
	root := File{Path: rootPath, Size: rec.Root.Size, SHA256: rec.Root.SHA256}
	if opts.PartSize > 0 && opts.PartSize == rec.PartSize {
		root.PartSHA256 = slices.Clone(rec.Root.PartSHA256)
	}
	im := &Image{Metadata: md, MetadataFile: mf, Root: root, RootKind: rec.RootKind, Fingerprint: rec.Fingerprint}
	return im, &Stream{path: rootPath, size: rec.Root.Size}, nil
}

// Stream reads a resumed image's root once, front to back, for its
// upload. It hashes nothing itself (the store checks the recorded digests
// as it reads, see Resume); it names the file and fails the read when the
// file is shorter or longer than recorded, and it is the one way the
// root's bytes are read, so a publish from a record reads each byte once.
type Stream struct {
	path string
	size int64
}

// Path is the root file's path.
func (s *Stream) Path() string { return s.path }

// Open opens the root for one read; each Open starts over.
func (s *Stream) Open(ctx context.Context) (io.ReadCloser, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, &Error{"rootfs", s.path, fmt.Errorf("cannot open: %w", err)}
	}
	return &streamReader{s: s, f: f, m: &meter{ctx: ctx, r: f, w: io.Discard, t: newTicker(nil, s.path, s.size)}}, nil
}

type streamReader struct {
	s   *Stream
	f   *os.File
	m   *meter
	err error // sticky
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.m.Read(p)
	switch {
	case r.m.n > r.s.size:
		r.err = r.changed(fmt.Sprintf("it is longer than the recorded %d bytes", r.s.size))
	case err == io.EOF && r.m.n < r.s.size:
		r.err = r.changed(fmt.Sprintf("it has %d bytes, recorded %d", r.m.n, r.s.size))
	case err != nil && err != io.EOF:
		r.err = &Error{"rootfs", r.s.path, r.m.problem()}
	}
	if r.err != nil {
		return n, r.err
	}
	return n, err
}

func (r *streamReader) changed(why string) error {
	return &Error{"rootfs", r.s.path, fmt.Errorf("%w: %s", ErrChanged, why)}
}

func (r *streamReader) Close() error { return r.f.Close() }
