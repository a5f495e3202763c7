package appliance

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/registry"
)

// RecordDigests inspects the fresh outputs in dir once (SHA-256s, upload
// part digests, fingerprint) and records them beside the outputs
// (image.RecordName), so that a publish uploads them without reading them
// first. Build calls it in its work folder, before the folder replaces the
// old outputs: the record appears together with the files it describes.
func RecordDigests(ctx context.Context, dir string) error {
	im, err := image.Inspect(ctx, filepath.Join(dir, "incus.tar.xz"), filepath.Join(dir, "rootfs.squashfs"),
		image.Options{PartSize: registry.UploadPartSize})
	if err != nil {
		return fmt.Errorf("the outputs do not make a valid image: %w", err)
	}
	rec, err := image.NewRecord(im, registry.UploadPartSize)
	if err != nil {
		return err
	}
	return image.WriteRecord(dir, rec)
}

// resumeRecorded returns the image meta and root make according to the
// digest record beside them (image.Resume), and the stream that reads the
// root checking it, when there is a record and it still matches the files:
// same folder, names, sizes and modification times, and the metadata
// tarball, re-read and re-hashed (it is small), the same. Otherwise nil:
// the caller inspects the files.
func resumeRecorded(ctx context.Context, meta, root string, opts image.Options) (*image.Image, *image.Stream) {
	dir := filepath.Dir(root)
	if filepath.Dir(meta) != dir {
		return nil, nil
	}
	rec, err := image.ReadRecord(dir)
	if err != nil {
		return nil, nil
	}
	im, stream, err := image.Resume(ctx, meta, root, rec, opts)
	if err != nil {
		return nil, nil
	}
	return im, stream
}
