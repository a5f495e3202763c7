package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// rootFormats is what to tell a user whose root is in an unknown format.
const rootFormats = "use a squashfs (rootfs.squashfs), a qcow2 VM disk (disk.qcow2) or an xz-compressed tarball (rootfs.tar.xz)"

// readRoot reads the root at path once, hashing it into its own sha256
// and into combined, and recognises its kind from the first bytes.
func readRoot(ctx context.Context, path string, combined digest.Fingerprint, progress func(string, int64, int64), partSize int64) (File, catalog.RootKind, error) {
	f, total, err := open("rootfs", path, "rootfs.squashfs, disk.qcow2 or rootfs.tar.xz")
	if err != nil {
		return File{}, "", err
	}
	defer f.Close()
	fail := func(err error) (File, catalog.RootKind, error) {
		return File{}, "", &Error{"rootfs", path, err}
	}
	var (
		kind catalog.RootKind
		used int64 // squashfs bytes_used
	)
	first := func(head []byte) (err error) {
		if kind, used, err = detectRoot(head); err == nil && total >= 0 {
			err = checkSquashfsSize(kind, used, total)
		}
		return err
	}
	sum := digest.New()
	hashes := []hash.Hash{sum, combined}
	var parts *partHasher
	if partSize > 0 {
		parts = newPartHasher(partSize)
		hashes = append(hashes, parts)
	}
	t := newTicker(progress, path, total)
	n, err := hashParallel(ctx, f, hashes, first, t.tick)
	if err != nil {
		return fail(err)
	}
	if n == 0 {
		return fail(errors.New("file is empty; " + rootFormats))
	}
	if err := checkSquashfsSize(kind, used, n); err != nil {
		return fail(err)
	}
	t.finish(n)
	file := File{Path: path, Size: n, SHA256: digest.Hex(sum)}
	if parts != nil {
		file.PartSHA256 = parts.parts()
	}
	return file, kind, nil
}

// detectRoot recognises a root from its first bytes (up to headSize) and,
// for squashfs, returns the superblock's bytes_used.
func detectRoot(head []byte) (catalog.RootKind, int64, error) {
	switch {
	case bytes.HasPrefix(head, squashfsMagic):
		if len(head) < 96 {
			return "", 0, fmt.Errorf("truncated squashfs: %d bytes, shorter than its 96-byte superblock; re-create or re-download it", len(head))
		}
		return catalog.RootSquashfs, int64(binary.LittleEndian.Uint64(head[40:48])), nil
	case bytes.HasPrefix(head, qcow2Magic):
		if len(head) < 72 {
			return "", 0, fmt.Errorf("truncated qcow2: %d bytes, shorter than its 72-byte header; re-create or re-download it", len(head))
		}
		return catalog.RootQCOW2, 0, nil
	case bytes.HasPrefix(head, xzMagic):
		blk := xzHead(head)
		if !isTarHeader(blk) {
			return "", 0, errors.New(`xz-compressed but not a tar archive; a tar.xz root must be a tarball compressed with xz ("tar -cJf"), or ` + rootFormats)
		}
		if tarEntryName(blk) == "metadata.yaml" {
			return "", 0, errors.New("this is an Incus metadata tarball (it starts with metadata.yaml), not a root filesystem; did you swap the metadata and rootfs arguments?")
		}
		return catalog.RootTarXZ, 0, nil
	}
	return "", 0, fmt.Errorf("not a squashfs, qcow2 or tar.xz image (%s); %s", sniff(head), rootFormats)
}

// checkSquashfsSize reports a squashfs whose superblock claims more bytes
// than the file has.
func checkSquashfsSize(kind catalog.RootKind, used, size int64) error {
	if kind == catalog.RootSquashfs && used > size {
		return fmt.Errorf("truncated squashfs: its superblock says %d bytes but the file has %d; re-create or re-download it", used, size)
	}
	return nil
}

// xzHead decompresses up to one tar block from the start of an xz file.
func xzHead(head []byte) []byte {
	xr, err := xz.ReaderConfig{DictCap: lzma.MinDictCap}.NewReader(bytes.NewReader(head))
	if err != nil {
		return nil
	}
	blk := make([]byte, 512)
	n, _ := io.ReadFull(xr, blk)
	return blk[:n]
}

// tarEntryName returns the cleaned name in a ustar header block.
func tarEntryName(blk []byte) string {
	cstr := func(b []byte) string {
		if i := bytes.IndexByte(b, 0); i >= 0 {
			b = b[:i]
		}
		return string(b)
	}
	name := cstr(blk[0:100])
	if len(blk) >= 500 && string(blk[257:263]) == "ustar\x00" {
		if prefix := cstr(blk[345:500]); prefix != "" {
			name = prefix + "/" + name
		}
	}
	return path.Clean(strings.TrimLeft(name, "/"))
}
