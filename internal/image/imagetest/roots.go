package imagetest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ulikunitz/xz"
)

// WriteSquashfs writes dir/rootfs.squashfs, a fake squashfs of size bytes
// (at least 96): a plausible superblock with "hsqs" magic and
// bytes_used = size, followed by pseudo-random bytes determined by seed.
// It returns the path. It is fast (no mksquashfs) but not mountable.
func WriteSquashfs(t testing.TB, dir string, size int, seed int64) string {
	t.Helper()
	return writeRandom(t, filepath.Join(dir, "rootfs.squashfs"), size, 96, seed, func(h []byte) {
		le := binary.LittleEndian
		copy(h, "hsqs")
		le.PutUint32(h[4:], 1)        // inode count
		le.PutUint32(h[12:], 128<<10) // block size
		le.PutUint32(h[16:], 0)       // fragments
		le.PutUint16(h[20:], 1)       // gzip
		le.PutUint16(h[22:], 17)      // block log
		le.PutUint16(h[28:], 4)       // major version
		le.PutUint16(h[30:], 0)       // minor version
		le.PutUint64(h[40:], uint64(size))
	})
}

// WriteQCOW2 writes dir/disk.qcow2, a fake qcow2 v3 disk of size bytes (at
// least 72): a header with "QFI\xfb" magic followed by pseudo-random bytes
// determined by seed. It returns the path.
func WriteQCOW2(t testing.TB, dir string, size int, seed int64) string {
	t.Helper()
	return writeRandom(t, filepath.Join(dir, "disk.qcow2"), size, 72, seed, func(h []byte) {
		be := binary.BigEndian
		clear(h[:104])
		copy(h, "QFI\xfb")
		be.PutUint32(h[4:], 3)      // version
		be.PutUint32(h[20:], 16)    // cluster bits
		be.PutUint64(h[24:], 1<<30) // virtual size
		be.PutUint32(h[36:], 1)     // L1 size
		be.PutUint64(h[40:], 3<<16) // L1 table offset
		be.PutUint64(h[48:], 1<<16) // refcount table offset
		be.PutUint32(h[56:], 1)     // refcount table clusters
		be.PutUint32(h[96:], 4)     // refcount order (v3)
		be.PutUint32(h[100:], 104)  // header length (v3)
	})
}

// WriteRootTarXZ writes dir/rootfs.tar.xz, an xz-compressed tarball holding
// etc/os-release and payload.bin, size pseudo-random bytes determined by
// seed. It returns the path. Keep size small: random data compresses slowly.
func WriteRootTarXZ(t testing.TB, dir string, size int, seed int64) string {
	t.Helper()
	payload := make([]byte, size)
	newRand(seed).Read(payload)
	var buf bytes.Buffer
	xw, err := xz.WriterConfig{DictCap: 1 << 20}.NewWriter(&buf)
	if err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	tw := tar.NewWriter(xw)
	for _, e := range []struct {
		name string
		body []byte
	}{{"./", nil}, {"./etc/", nil}, {"./etc/os-release", []byte("ID=imagetest\n")}, {"./payload.bin", payload}} {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
		if e.body == nil {
			hdr.Mode, hdr.Typeflag = 0o755, tar.TypeDir
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("imagetest: %v", err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatalf("imagetest: %v", err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	if err := xw.Close(); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	return write(t, filepath.Join(dir, "rootfs.tar.xz"), buf.Bytes())
}

// newRand returns a deterministic pseudo-random source for seed.
func newRand(seed int64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], uint64(seed))
	return rand.NewChaCha8(s)
}

// writeRandom streams size pseudo-random bytes to path, at least
// headerSize of them, letting header overwrite the first 128 (or fewer).
func writeRandom(t testing.TB, path string, size, headerSize int, seed int64, header func([]byte)) string {
	t.Helper()
	if size < headerSize {
		t.Fatalf("imagetest: %s: size %d is smaller than its %d-byte header", filepath.Base(path), size, headerSize)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	r := newRand(seed)
	h := make([]byte, 128)
	r.Read(h)
	header(h)
	h = h[:min(size, len(h))]
	bw.Write(h)
	if _, err := io.CopyN(bw, r, int64(size-len(h))); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	return path
}
