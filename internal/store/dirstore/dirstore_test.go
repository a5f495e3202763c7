package dirstore_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/dirstore"
	"github.com/incus-appliance/registry/internal/store/dirstore/dirstoretest"
	"github.com/incus-appliance/registry/internal/store/storetest"
	"golang.org/x/sys/unix"
)

func TestConformance(t *testing.T) {
	caps := storetest.Capabilities{Attributes: xattrsWork(t)}
	storetest.Run(t, func(t *testing.T) store.Store { return dirstoretest.Open(t, t.TempDir()) }, caps)
}

// xattrsWork reports whether the file system under t.TempDir() stores
// user extended attributes.
func xattrsWork(t *testing.T) bool {
	p := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := unix.Setxattr(p, "user.probe", []byte("1"), 0)
	if err != nil {
		t.Logf("no user xattrs here (%v): attributes are not tested", err)
	}
	return err == nil
}

func put(t *testing.T, s store.Store, key string, data []byte, opts store.PutOptions) store.ObjectInfo {
	t.Helper()
	info, err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

// wantInfo checks that key holds data (storetest.WantObject) with the
// SHA-256 and ETag (the quoted SHA-256) dirstore gives every object.
func wantInfo(t *testing.T, s store.Store, key string, data []byte) store.ObjectInfo {
	t.Helper()
	info := storetest.WantObject(t, s, key, data)
	if sum := digest.Of(data); info.SHA256 != sum || info.ETag != `"`+sum+`"` {
		t.Errorf("Stat(%q) = SHA256 %q ETag %s; want %s, \"%[4]s\"", key, info.SHA256, info.ETag, sum)
	}
	return info
}

func listed(t *testing.T, s store.Store, prefix string) []store.ObjectInfo {
	t.Helper()
	list, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return list
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestClose(t *testing.T) {
	s, err := dirstore.Open(t.TempDir(), dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Stat(t.Context(), "a"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat after Close: %v, want a closed-store error", err)
	}
	if _, err := s.Put(t.Context(), "a", bytes.NewReader(nil), 0, store.PutOptions{}); err == nil {
		t.Errorf("Put after Close succeeded")
	}
}
