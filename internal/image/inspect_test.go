package image_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
)

func TestInspectValid(t *testing.T) {
	for _, tc := range []struct {
		kind  catalog.RootKind
		write func(t testing.TB, dir string) string
	}{
		{catalog.RootSquashfs, func(t testing.TB, dir string) string { return imagetest.WriteSquashfs(t, dir, 3<<20+17, 7) }},
		{catalog.RootQCOW2, func(t testing.TB, dir string) string { return imagetest.WriteQCOW2(t, dir, 1<<20, 8) }},
		{catalog.RootTarXZ, func(t testing.TB, dir string) string { return imagetest.WriteRootTarXZ(t, dir, 20<<10, 9) }},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			dir := t.TempDir()
			meta := imagetest.WriteMetadata(t, dir, spec())
			root := tc.write(t, dir)
			img, err := image.Inspect(context.Background(), meta, root, image.Options{})
			if err != nil {
				t.Fatal(err)
			}
			mb, rb := filetest.Read(t, meta), filetest.Read(t, root)
			if want := digest.Of(mb, rb); img.Fingerprint != want {
				t.Errorf("fingerprint %s, want %s", img.Fingerprint, want)
			}
			wantMeta := image.File{Path: meta, Size: int64(len(mb)), SHA256: digest.Of(mb)}
			wantRoot := image.File{Path: root, Size: int64(len(rb)), SHA256: digest.Of(rb)}
			if !reflect.DeepEqual(img.MetadataFile, wantMeta) || !reflect.DeepEqual(img.Root, wantRoot) {
				t.Errorf("files %+v %+v, want %+v %+v", img.MetadataFile, img.Root, wantMeta, wantRoot)
			}
			if img.RootKind != tc.kind {
				t.Errorf("kind %q, want %q", img.RootKind, tc.kind)
			}
			md := img.Metadata
			if md.Architecture != "x86_64" || md.Arch != "amd64" || !md.CreationDate.Equal(created) ||
				md.CreationDate.Location().String() != "UTC" || md.ExpiryDate.Sub(md.CreationDate).Hours() != 720 ||
				md.OS != "debian" || md.Release != "bookworm" || md.Variant != "default" ||
				md.Description != "Debian bookworm debian-bookworm-amd64" || md.Name != "debian-bookworm-amd64" ||
				md.Serial != "20261125_1735" || md.Properties["architecture"] != "amd64" || len(md.Properties) != 7 {
				t.Errorf("metadata %+v", md)
			}
		})
	}
}

func TestInspectArchOption(t *testing.T) {
	meta, root := validImage(t)
	for _, arch := range []string{"amd64", "x86_64", "AMD64"} {
		if _, err := image.Inspect(context.Background(), meta, root, image.Options{Arch: arch}); err != nil {
			t.Errorf("Arch %q: %v", arch, err)
		}
	}
	_, err := image.Inspect(context.Background(), meta, root, image.Options{Arch: "aarch64"})
	want := "metadata " + meta + ": architecture mismatch: metadata.yaml says amd64, --arch says arm64"
	if !errors.Is(err, image.ErrArchMismatch) || err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want errors.Is ErrArchMismatch and prefix %q", err, want)
	}
	if _, err := image.Inspect(context.Background(), meta, root, image.Options{Arch: "sparc"}); err == nil ||
		!strings.Contains(err.Error(), `--arch: unknown architecture "sparc"`) {
		t.Errorf("unknown --arch: got %v", err)
	}
}

func TestInspectProgress(t *testing.T) {
	meta, root := validImage(t)
	var mu sync.Mutex
	last := map[string][2]int64{}
	_, err := image.Inspect(context.Background(), meta, root, image.Options{Progress: func(p string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		last[p] = [2]int64{done, total}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{meta, root} {
		size := int64(len(filetest.Read(t, p)))
		if got := last[p]; got != [2]int64{size, size} {
			t.Errorf("%s: last progress %v, want done == total == %d", p, got, size)
		}
	}
}

func TestInspectCancelled(t *testing.T) {
	meta, root := validImage(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := image.Inspect(ctx, meta, root, image.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestInspectPartDigests(t *testing.T) {
	dir := t.TempDir()
	meta := imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec("x", time.Unix(1764092100, 0)))
	const size = 5<<20 + 12345
	root := imagetest.WriteSquashfs(t, dir, size, 7)
	im, err := image.Inspect(context.Background(), meta, root, image.Options{PartSize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(root)
	var want []string
	for off := 0; off < len(data); off += 2 << 20 {
		want = append(want, digest.Of(data[off:min(off+2<<20, len(data))]))
	}
	if strings.Join(im.Root.PartSHA256, ",") != strings.Join(want, ",") {
		t.Errorf("part digests = %v\nwant %v", im.Root.PartSHA256, want)
	}
	if im, _ := image.Inspect(context.Background(), meta, root, image.Options{}); im.Root.PartSHA256 != nil {
		t.Error("part digests computed without PartSize")
	}
}
