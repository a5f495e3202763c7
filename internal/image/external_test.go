package image_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
	"github.com/incus-appliance/registry/internal/tooltest"
)

// TestInspectRealSquashfs checks a squashfs made by mksquashfs.
func TestInspectRealSquashfs(t *testing.T) {
	tooltest.Require(t, "mksquashfs")
	dir, src := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	writeFile(t, src, "etc/os-release", []byte("ID=test\n"))
	root := filepath.Join(dir, "rootfs.squashfs")
	tooltest.Run(t, "mksquashfs", src, root, "-noappend", "-comp", "gzip", "-quiet")
	meta := imagetest.WriteMetadata(t, dir, spec())
	img, err := image.Inspect(context.Background(), meta, root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if img.RootKind != catalog.RootSquashfs || img.Fingerprint != digest.Of(filetest.Read(t, meta), filetest.Read(t, root)) {
		t.Errorf("got %+v", img)
	}
}

// TestInspectTarCLI checks metadata tarballs made by GNU tar, with
// "./"-prefixed names, and a root tarball made by tar -cJf.
func TestInspectTarCLI(t *testing.T) {
	tooltest.Require(t, "tar", "xz")
	src, dir := t.TempDir(), t.TempDir()
	writeFile(t, src, "metadata.yaml", spec().YAML())
	os.Mkdir(filepath.Join(src, "templates"), 0o755)
	writeFile(t, src, "templates/hostname.tpl", []byte(imagetest.HostnameTemplate))
	meta := filepath.Join(dir, "incus.tar.xz")
	root := filepath.Join(dir, "rootfs.tar.xz")
	for _, args := range [][]string{
		{"-cJf", meta, "-C", src, "."},
		{"-cJf", root, "-C", src, "templates"},
	} {
		tooltest.Run(t, "tar", args...)
	}
	img, err := image.Inspect(context.Background(), meta, root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if img.RootKind != catalog.RootTarXZ || img.Metadata.Arch != "amd64" {
		t.Errorf("got %+v", img)
	}
}

// TestWriteMetadataTarballCLI checks xz and tar read what
// WriteMetadataTarball writes.
func TestWriteMetadataTarballCLI(t *testing.T) {
	tooltest.Require(t, "tar", "xz")
	meta := imagetest.WriteMetadata(t, t.TempDir(), spec())
	out := tooltest.Run(t, "tar", "-tvJf", meta)
	for _, want := range []string{"root/root", "2026-11-25 17:35 metadata.yaml", "templates/hostname.tpl"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("tar -tvJf output %q lacks %q", out, want)
		}
	}
	if again := imagetest.WriteMetadata(t, t.TempDir(), spec()); digest.Of(filetest.Read(t, again)) != digest.Of(filetest.Read(t, meta)) {
		t.Error("WriteMetadataTarball is not deterministic")
	}
}

// TestInspectReadsOnce feeds both files through FIFOs: a second open or a
// rewind would block or fail.
func TestInspectReadsOnce(t *testing.T) {
	src := t.TempDir()
	metaData := filetest.Read(t, imagetest.WriteMetadata(t, src, spec()))
	rootData := filetest.Read(t, imagetest.WriteSquashfs(t, src, 5<<20+3, 2))
	dir := t.TempDir()
	meta, root := filepath.Join(dir, "meta.fifo"), filepath.Join(dir, "root.fifo")
	for _, p := range []string{meta, root} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}
	feed := func(p string, data []byte) {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		f.Write(data) // a reader that stops early makes this fail; Inspect reports it
	}
	go feed(meta, metaData)
	go feed(root, rootData)
	var last [2]int64
	type result struct {
		img *image.Image
		err error
	}
	done := make(chan result, 1)
	go func() {
		img, err := image.Inspect(context.Background(), meta, root, image.Options{Progress: func(p string, d, total int64) {
			if p == root {
				last = [2]int64{d, total}
			}
		}})
		done <- result{img, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if want := digest.Of(metaData, rootData); r.img.Fingerprint != want || r.img.Root.Size != int64(len(rootData)) {
			t.Errorf("fingerprint %s size %d, want %s %d", r.img.Fingerprint, r.img.Root.Size, want, len(rootData))
		}
		if n := int64(len(rootData)); last != [2]int64{n, n} {
			t.Errorf("last progress %v, want done == total == %d", last, n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Inspect hangs: it reads a file twice")
	}
}
