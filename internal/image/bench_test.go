package image_test

import (
	"context"
	"testing"

	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
)

// BenchmarkInspectRoot measures Inspect on a 256 MiB squashfs root (from
// the page cache, so this is the hashing speed).
func BenchmarkInspectRoot(b *testing.B) {
	const size = 256 << 20
	dir := b.TempDir()
	meta := imagetest.WriteMetadata(b, dir, spec())
	root := imagetest.WriteSquashfs(b, dir, size, 1)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if _, err := image.Inspect(context.Background(), meta, root, image.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
