package image_test

import (
	"context"
	"testing"

	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
)

// FuzzInspectMetadata feeds arbitrary bytes as the metadata tarball:
// Inspect must return an image or an error, never panic or hang.
func FuzzInspectMetadata(f *testing.F) {
	dir := f.TempDir()
	good := filetest.Read(f, imagetest.WriteMetadata(f, dir, spec()))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(xzBytes(f, tarBytes(f, "metadata.yaml", okYAML)))
	f.Add(xzBytes(f, tarBytes(f, "metadata.yaml", "architecture: &a [*a]\n")))
	f.Add(xzBytes(f, []byte("hello")))
	f.Add([]byte{})
	f.Add([]byte("\xfd7zXZ\x00"))
	root := imagetest.WriteSquashfs(f, dir, 4096, 1)
	f.Fuzz(func(t *testing.T, data []byte) {
		meta := writeFile(t, dir, "fuzz.tar.xz", data) // inputs run one at a time per process
		img, err := image.Inspect(context.Background(), meta, root, image.Options{})
		if err == nil && (img == nil || img.Metadata.Arch == "") {
			t.Fatalf("no error but image %+v", img)
		}
	})
}
