package image_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
)

// recorded inspects a fresh valid image and records it in its folder.
func recorded(t *testing.T) (meta, root string, im *image.Image, rec *image.Record) {
	t.Helper()
	meta, root = validImage(t)
	im, err := image.Inspect(context.Background(), meta, root, image.Options{PartSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if rec, err = image.NewRecord(im, 16<<10); err != nil {
		t.Fatal(err)
	}
	if err := image.WriteRecord(filepath.Dir(root), rec); err != nil {
		t.Fatal(err)
	}
	if rec, err = image.ReadRecord(filepath.Dir(root)); err != nil {
		t.Fatal(err)
	}
	return meta, root, im, rec
}

func TestResumeGivesWhatInspectGave(t *testing.T) {
	meta, root, im, rec := recorded(t)
	got, s, err := image.Resume(context.Background(), meta, root, rec, image.Options{PartSize: 16 << 10, Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, im) {
		t.Errorf("Resume gave\n%+v\nInspect gave\n%+v", got, im)
	}
	// The stream reads the root once and ends cleanly.
	r, err := s.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != im.Root.Size {
		t.Fatalf("stream: %d bytes, %v; want %d, nil", n, err, im.Root.Size)
	}
}

func TestResumeRefusesChangedFiles(t *testing.T) {
	ctx := context.Background()
	t.Run("root mtime", func(t *testing.T) {
		meta, root, _, rec := recorded(t)
		later := mtime(t, root).Add(1e9)
		os.Chtimes(root, later, later)
		if _, _, err := image.Resume(ctx, meta, root, rec, image.Options{}); !errors.Is(err, image.ErrChanged) {
			t.Fatalf("got %v, want ErrChanged", err)
		}
	})
	t.Run("metadata bytes", func(t *testing.T) {
		meta, root, _, rec := recorded(t)
		imagetest.Rewrite(t, meta, func(b []byte) { b[len(b)/2] ^= 1 })
		if _, _, err := image.Resume(ctx, meta, root, rec, image.Options{}); err == nil {
			t.Fatal("a changed metadata tarball was accepted")
		}
	})
	t.Run("damaged record", func(t *testing.T) {
		_, root, _, _ := recorded(t)
		path := filepath.Join(filepath.Dir(root), image.RecordName)
		data, _ := os.ReadFile(path)
		os.WriteFile(path, []byte(strings.Replace(string(data), `"size": `, `"size": 1`, 1)), 0o644)
		if _, err := image.ReadRecord(filepath.Dir(root)); !errors.Is(err, image.ErrNoRecord) {
			t.Fatalf("got %v, want ErrNoRecord", err)
		}
	})
	t.Run("root bytes, same size and mtime", func(t *testing.T) {
		// Not noticed here (the root is not read): the store checks the
		// recorded digests while it uploads (builder's tests).
		meta, root, im, rec := recorded(t)
		imagetest.Rewrite(t, root, func(b []byte) { b[len(b)-10] ^= 1 })
		got, _, err := image.Resume(ctx, meta, root, rec, image.Options{})
		if err != nil || got.Root.SHA256 != im.Root.SHA256 {
			t.Fatalf("Resume: %v, root sha256 %s, want the recorded %s", err, got.Root.SHA256, im.Root.SHA256)
		}
	})
}

func mtime(t *testing.T, path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.ModTime()
}
