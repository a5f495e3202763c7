package image_test

import (
	"archive/tar"
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/image/imagetest"
)

// created is the creation date of the test images.
var created = time.Date(2026, 11, 25, 17, 35, 0, 0, time.UTC)

// spec returns a valid metadata spec.
func spec() imagetest.MetadataSpec { return imagetest.DefaultSpec("debian-bookworm-amd64", created) }

// validImage writes a valid metadata tarball and a small squashfs root.
func validImage(t testing.TB) (meta, root string) {
	dir := t.TempDir()
	return imagetest.WriteMetadata(t, dir, spec()), imagetest.WriteSquashfs(t, dir, 64<<10, 1)
}

// xzBytes compresses data with xz.
func xzBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarBytes builds an uncompressed tar of name/content pairs.
func tarBytes(t testing.TB, entries ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(entries); i += 2 {
		hdr := &tar.Header{Name: entries[i], Mode: 0o644, Size: int64(len(entries[i+1])), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(entries[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeFile writes data to dir/name and returns the path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	filetest.Write(t, p, data)
	return p
}
