package image

import (
	"context"
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/incus-appliance/registry/internal/catalog"
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
// the record's, so the root is not proven yet: read it only through the
// returned Stream, which checks it against the record as it goes.
//
// Any mismatch is an error wrapping ErrChanged (a missing file: the
// os error); the caller then inspects the files instead.
func Resume(ctx context.Context, metadataPath, rootPath string, rec *Record, opts Options) (*Image, *Stream, error) {
	for _, f := range []struct {
		role, path string
		rec        RecordedFile
	}{{"metadata", metadataPath, rec.Metadata}, {"rootfs", rootPath, rec.Root}} {
		if err := f.rec.unchanged(f.path); err != nil {
			return nil, nil, &Error{f.role, f.path, fmt.Errorf("%w: %w", ErrChanged, err)}
		}
	}
	combined := digest.NewFingerprint()
	md, mf, err := readMetadata(ctx, metadataPath, combined, opts.Progress)
	if err != nil {
		return nil, nil, err
	}
	if mf.SHA256 != rec.Metadata.SHA256 {
		return nil, nil, &Error{"metadata", metadataPath, fmt.Errorf("%w: its SHA-256 is not the recorded one", ErrChanged)}
	}
	if opts.Arch != "" {
		want, err := catalog.NormalizeArch(opts.Arch)
		if err != nil {
			return nil, nil, fmt.Errorf("--arch: %w", err)
		}
		if md.Arch != want {
			return nil, nil, &Error{"metadata", metadataPath, fmt.Errorf(
				"%w: metadata.yaml says %s, --arch says %s; publish the %s build of the image or fix --arch",
				ErrArchMismatch, md.Arch, want, want)}
		}
	}
	state, err := combined.Hash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	root := File{Path: rootPath, Size: rec.Root.Size, SHA256: rec.Root.SHA256}
	if opts.PartSize > 0 && opts.PartSize == rec.PartSize {
		root.PartSHA256 = slices.Clone(rec.Root.PartSHA256)
	}
	im := &Image{Metadata: md, MetadataFile: mf, Root: root, RootKind: rec.RootKind, Fingerprint: rec.Fingerprint}
	return im, &Stream{path: rootPath, size: rec.Root.Size, fingerprint: rec.Fingerprint, state: state}, nil
}

// Stream reads a resumed image's root for its upload, checking it against
// the record on the way: every byte goes into the combined fingerprint
// (continuing from the metadata's bytes), and the end of the file is
// reported only if the size and fingerprint are the recorded ones;
// otherwise the last Read fails with an error wrapping ErrChanged, so an
// upload reading to the end (as every store does before it makes an object
// visible) never completes with other bytes.
type Stream struct {
	path, fingerprint string
	size              int64
	state             []byte // the combined hash after the metadata
}

// Path is the root file's path.
func (s *Stream) Path() string { return s.path }

// Open opens the root for one read, front to back; each Open starts over.
func (s *Stream) Open(ctx context.Context) (io.ReadCloser, error) {
	h := digest.NewFingerprint()
	if err := h.Hash.(encoding.BinaryUnmarshaler).UnmarshalBinary(s.state); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, &Error{"rootfs", s.path, fmt.Errorf("cannot open: %w", err)}
	}
	return &streamReader{s: s, f: f, h: h, m: &meter{ctx: ctx, r: f, w: h, t: newTicker(nil, s.path, s.size)}}, nil
}

type streamReader struct {
	s   *Stream
	f   *os.File
	h   digest.Fingerprint
	m   *meter
	err error // sticky: a mismatch found
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
	case err == io.EOF && r.h.Hex() != r.s.fingerprint:
		r.err = r.changed("its bytes differ from the recorded ones (same size and modification time)")
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
