package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// maxMetadataYAML bounds metadata.yaml; real ones are well under 10 KiB.
const maxMetadataYAML = 4 << 20

// buildHint tells the user how to make a proper metadata tarball.
const buildHint = `build it with distrobuilder or "tar -cJf"`

// readMetadata reads the metadata tarball at path once, feeding every byte
// to its own sha256 and to combined, and returns the validated metadata.
func readMetadata(ctx context.Context, path string, combined digest.Fingerprint, progress func(string, int64, int64)) (Metadata, File, error) {
	f, total, err := open("metadata", path, "incus.tar.xz")
	if err != nil {
		return Metadata{}, File{}, err
	}
	defer f.Close()
	sum := digest.New()
	m := &meter{ctx: ctx, r: f, w: io.MultiWriter(sum, combined), t: newTicker(progress, path, total)}
	data, err := walkMetadata(m)
	if err != nil {
		return Metadata{}, File{}, &Error{"metadata", path, err}
	}
	m.t.finish(m.n)
	md, err := parseMetadata(data)
	if err != nil {
		return Metadata{}, File{}, &Error{"metadata", path, err}
	}
	return md, File{Path: path, Size: m.n, SHA256: digest.Hex(sum)}, nil
}

// walkMetadata decompresses and walks the whole tarball read from m and
// returns the content of metadata.yaml.
func walkMetadata(m *meter) ([]byte, error) {
	br := bufio.NewReaderSize(m, 64<<10)
	head, _ := br.Peek(512)
	switch {
	case m.err != nil:
		return nil, m.problem()
	case len(head) == 0:
		return nil, errors.New("file is empty; " + buildHint)
	case !bytes.HasPrefix(head, xzMagic):
		hint := buildHint
		if bytes.HasPrefix(head, squashfsMagic) || bytes.HasPrefix(head, qcow2Magic) {
			hint = "did you swap the metadata and rootfs arguments?"
		}
		return nil, fmt.Errorf("not an xz-compressed tarball (%s); %s", sniff(head), hint)
	}
	w := &tarWalk{m: m}
	xr, err := xz.ReaderConfig{DictCap: lzma.MinDictCap}.NewReader(br)
	if err != nil {
		w.xzErr = err
		return nil, w.problem(err)
	}
	w.xr = xr
	tr := tar.NewReader(w)
	var data []byte
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, w.problem(err)
		}
		w.last = hdr.Name
		w.entries++
		if w.entries <= 3 {
			w.names = append(w.names, hdr.Name)
		}
		name := path.Clean(strings.TrimLeft(hdr.Name, "/"))
		if name != "metadata.yaml" {
			if path.Base(name) == "metadata.yaml" && w.nested == "" {
				w.nested = hdr.Name
			}
			continue
		}
		if data != nil {
			return nil, errors.New("the tarball holds metadata.yaml twice; keep only one")
		}
		if !hdr.FileInfo().Mode().IsRegular() {
			return nil, errors.New("metadata.yaml in the tarball is not a regular file; " + buildHint)
		}
		if hdr.Size > maxMetadataYAML {
			return nil, fmt.Errorf("metadata.yaml is %d bytes, more than the %d allowed", hdr.Size, maxMetadataYAML)
		}
		if data, err = io.ReadAll(tr); err != nil {
			return nil, w.problem(err)
		}
	}
	// Read the xz stream to its end so its checksums and index are
	// verified, then whatever follows it (nothing, normally).
	if _, err := io.Copy(io.Discard, w); err != nil {
		return nil, w.problem(err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, w.problem(err)
	}
	if data == nil {
		return nil, w.missing()
	}
	return data, nil
}

// tarWalk sits between the xz and the tar reader, remembering xz errors
// and what has been seen so errors can be explained.
type tarWalk struct {
	m       *meter
	xr      *xz.Reader
	xzErr   error
	entries int
	names   []string // the first few entry names
	last    string   // name of the last entry read
	nested  string   // a metadata.yaml found below the top level
}

// Read reads decompressed bytes and records xz errors.
func (w *tarWalk) Read(p []byte) (int, error) {
	n, err := w.xr.Read(p)
	if err != nil && err != io.EOF && w.xzErr == nil {
		w.xzErr = err
	}
	return n, err
}

// problem explains err, which stopped the walk.
func (w *tarWalk) problem(err error) error {
	const redo = "re-create or re-download the file"
	switch {
	case w.m.err != nil:
		return w.m.problem()
	case w.xzErr != nil && errors.Is(w.xzErr, io.ErrUnexpectedEOF):
		return errors.New("truncated: the xz data ends early; " + redo)
	case w.xzErr != nil:
		return fmt.Errorf("corrupt xz data (%v); %s", w.xzErr, redo)
	case w.entries == 0 && errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("xz-compressed but not a tar archive (too short); " + buildHint)
	case w.entries == 0:
		return fmt.Errorf("xz-compressed but not a tar archive (%v); %s", err, buildHint)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("truncated tar archive (it ends inside %q); %s", w.last, redo)
	default:
		return fmt.Errorf("corrupt tar archive after entry %q (%v); %s", w.last, err, redo)
	}
}

// missing explains a tarball without metadata.yaml.
func (w *tarWalk) missing() error {
	switch {
	case w.nested != "":
		return fmt.Errorf("no metadata.yaml at the top of the tarball (found %q); "+
			`create the tarball from inside the directory holding metadata.yaml, e.g. "tar -cJf incus.tar.xz -C DIR metadata.yaml templates"`, w.nested)
	case w.entries == 0:
		return errors.New("the tarball is empty, it has no metadata.yaml; " + buildHint)
	}
	more := ""
	if w.entries > len(w.names) {
		more = fmt.Sprintf(" and %d more", w.entries-len(w.names))
	}
	return fmt.Errorf("no metadata.yaml in the tarball (it holds %q%s; is this the root filesystem?); %s",
		w.names, more, buildHint)
}
