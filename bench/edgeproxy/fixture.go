package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/miniotest"
)

// fixture is what the benchmark put into the bucket.
type fixture struct {
	imagesJSON []byte // streams/v1/images.json
	bigKey     string // images/<fingerprint>/rootfs.squashfs
	bigSize    int64
	bigSHA256  string
}

// upload fills the bucket: a size-byte random root file (streamed from a
// seeded generator, never stored locally) under a content-addressed path,
// then an images.json of about jsonSize bytes listing it among many other
// products, and the index.json pointing at it.
func upload(ctx context.Context, srv *miniotest.Server, bucket string, size int64, jsonSize int) (*fixture, error) {
	rng := rand.New(rand.NewChaCha8([32]byte{'e', 'd', 'g', 'e'}))
	fp := randHex(rng)
	f := &fixture{bigKey: "images/" + fp + "/rootfs.squashfs", bigSize: size}

	h := digest.New()
	body := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{'r', 'o', 'o', 't'}), size), h)
	tm := transfermanager.New(srv.Client(), func(o *transfermanager.Options) { o.PartSizeBytes = 64 << 20 })
	if _, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(f.bigKey), Body: body,
		ContentType: aws.String("application/octet-stream"),
	}); err != nil {
		return nil, fmt.Errorf("upload %s: %w", f.bigKey, err)
	}
	f.bigSHA256 = digest.Hex(h)

	// The catalog: the big image plus as many realistic products (several
	// architectures, a few versions each) as it takes to reach jsonSize.
	cat := catalog.New()
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(name, arch string, root catalog.FileRef, fp string, at time.Time) error {
		_, err := cat.Add(catalog.Image{
			Name: name, Arch: arch, OS: "Debian", Release: "bookworm", ReleaseTitle: "12", Variant: "default",
			Description: name + " appliance (" + arch + ", " + at.Format("2006-01-02") + ")", Created: at,
			Aliases: []string{name + "/latest"}, Requirements: map[string]string{"secureboot": "false"},
			Fingerprint: fp, Metadata: catalog.FileRef{SHA256: randHex(rng), Size: 900 + rng.Int64N(4000)},
			Root: root, RootKind: catalog.RootSquashfs,
		})
		return err
	}
	if err := add("bench", "amd64", catalog.FileRef{SHA256: f.bigSHA256, Size: size}, fp, created); err != nil {
		return nil, err
	}
	archs := []string{"amd64", "arm64", "riscv64"}
	for i := 0; len(cat.Marshal()) < jsonSize; i++ {
		name := fmt.Sprintf("app%03d", i)
		for _, arch := range archs {
			for v := range 3 {
				root := catalog.FileRef{SHA256: randHex(rng), Size: 50<<20 + rng.Int64N(400<<20)}
				if err := add(name, arch, root, randHex(rng), created.Add(time.Duration(v*24+i)*time.Hour)); err != nil {
					return nil, err
				}
			}
		}
	}
	f.imagesJSON = cat.Marshal()
	index := catalog.BuildIndex(cat.ProductKeys()).Marshal()
	for key, data := range map[string][]byte{catalog.ImagesPath: f.imagesJSON, catalog.IndexPath: index} {
		if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data),
			ContentType: aws.String("application/json"),
		}); err != nil {
			return nil, fmt.Errorf("upload %s: %w", key, err)
		}
	}
	return f, nil
}

func randHex(rng *rand.Rand) string {
	var b [32]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return hex.EncodeToString(b[:])
}
