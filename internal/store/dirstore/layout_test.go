package dirstore_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/dirstore"
	"github.com/incus-appliance/registry/internal/store/dirstore/dirstoretest"
)

func TestHandPlacedFile(t *testing.T) {
	root := t.TempDir()
	s := dirstoretest.Open(t, root)

	// Written without dirstore: no metadata cache.
	data := []byte(`{"format":"index:1.0"}`)
	if err := os.MkdirAll(filepath.Join(root, "streams/v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "streams/v1/index.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	wantInfo(t, s, "streams/v1/index.json", data)
	list := listed(t, s, "streams/")
	if len(list) != 1 || list[0].Size != int64(len(data)) || list[0].SHA256 != "" || list[0].ETag != "" {
		t.Errorf("List = %+v; want the file with its size and no digest (List never hashes)", list)
	}

	// Put records the cache; List can use it.
	key := "images/meta.json"
	data = []byte("original content")
	pinfo := put(t, s, key, data, store.PutOptions{ContentType: "application/json"})
	list = listed(t, s, "images/")
	if xattrsWork(t) && (len(list) != 1 || list[0].SHA256 != digest.Of(data) || list[0].ETag != pinfo.ETag ||
		list[0].ContentType != "application/json") {
		t.Errorf("List = %+v; want the cached digest, ETag %s and content type", list, pinfo.ETag)
	}

	// Appended in place: size and mtime change, the cache is stale.
	f, err := os.OpenFile(filepath.Join(root, key), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(" + appended"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	data = []byte("original content + appended")
	if info := wantInfo(t, s, key, data); info.ETag == pinfo.ETag || info.ContentType != "" {
		t.Errorf("stale cache trusted: %+v", info)
	}
	if list = listed(t, s, "images/"); len(list) != 1 || list[0].SHA256 != "" || list[0].ETag != "" {
		t.Errorf("List = %+v; want no digest from a stale cache", list)
	}

	// Rewritten in place with the same size: the mtime gives it away.
	pinfo = put(t, s, key, []byte("0123456789"), store.PutOptions{})
	path := filepath.Join(root, key)
	if err := os.WriteFile(path, []byte("abcdefghij"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	wantInfo(t, s, key, []byte("abcdefghij"))

	// IfMatch compares against the real content, not the stale cache.
	_, err = s.Put(t.Context(), key, strings.NewReader("x"), 1, store.PutOptions{IfMatch: pinfo.ETag})
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Errorf("IfMatch with the pre-edit ETag: %v, want ErrPreconditionFailed", err)
	}
}

func TestCrashLeavesNoObject(t *testing.T) {
	root := t.TempDir()
	s := dirstoretest.Open(t, root)
	put(t, s, "images/real", []byte("real"), store.PutOptions{})

	// A failed Put cleans up after itself.
	_, err := s.Put(t.Context(), "images/bad", strings.NewReader("body"), 4, store.PutOptions{SHA256: digest.Of([]byte("other"))})
	if !errors.Is(err, store.ErrChecksumMismatch) {
		t.Fatalf("Put with a bad digest: %v", err)
	}
	tmpDir := filepath.Join(root, ".registry-tmp")
	if entries, err := os.ReadDir(tmpDir); err != nil || len(entries) != 0 {
		t.Errorf("temp dir after a failed Put: %v, %v; want empty", entries, err)
	}

	// What a crash between write and rename leaves behind.
	stale := filepath.Join(tmpDir, "put-crashed")
	fresh := filepath.Join(tmpDir, "put-running")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if list := listed(t, s, ""); len(list) != 1 || list[0].Key != "images/real" {
		t.Errorf("List = %+v; want only images/real", list)
	}
	old := time.Now().Add(-25 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	// Without Create, Open changes nothing.
	dirstoretest.Open(t, root)
	if !exists(stale) {
		t.Fatalf("Open without Create removed a temp file")
	}
	s2, err := dirstore.Open(root, dirstore.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if exists(stale) {
		t.Errorf("Open(Create) kept a temp file older than 24 h")
	}
	if !exists(fresh) {
		t.Errorf("Open(Create) removed a recent temp file (a Put in progress)")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()

	missing := filepath.Join(dir, "registry")
	_, err := dirstore.Open(missing, dirstore.Options{})
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), missing) {
		t.Errorf("Open(missing) = %v; want a does-not-exist error naming %s", err, missing)
	}

	noParent := filepath.Join(dir, "nope", "registry")
	_, err = dirstore.Open(noParent, dirstore.Options{Create: true})
	if err == nil || !strings.Contains(err.Error(), `"`+filepath.Dir(noParent)+`"`) {
		t.Errorf("Open(Create) under a missing parent = %v; want an error naming %s", err, filepath.Dir(noParent))
	}
	if exists(filepath.Dir(noParent)) {
		t.Errorf("Open(Create) created the missing parent")
	}

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, create := range []bool{false, true} {
		_, err = dirstore.Open(file, dirstore.Options{Create: create})
		if err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("Open(file, Create=%v) = %v; want a not-a-directory error", create, err)
		}
	}

	s, err := dirstore.Open(missing, dirstore.Options{Create: true})
	if err != nil {
		t.Fatalf("Open(Create): %v", err)
	}
	defer s.Close()
	if fi, err := os.Stat(missing); err != nil || !fi.IsDir() {
		t.Fatalf("Open(Create) did not create the directory: %v", err)
	}
	if s.Dir() != missing {
		t.Errorf("Dir() = %q, want %q", s.Dir(), missing)
	}
}

func TestDeletePrunesEmptyDirs(t *testing.T) {
	root := t.TempDir()
	s := dirstoretest.Open(t, root)
	put(t, s, "a/b/c/obj", []byte("1"), store.PutOptions{})
	put(t, s, "a/keep", []byte("2"), store.PutOptions{})
	put(t, s, "x/y", []byte("3"), store.PutOptions{})

	if err := s.Delete(t.Context(), "a/b/c/obj"); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(root, "a/b")) || !exists(filepath.Join(root, "a/keep")) {
		t.Errorf("after Delete(a/b/c/obj): a/b should be gone, a/keep kept")
	}
	for _, key := range []string{"a/keep", "x/y"} {
		if err := s.Delete(t.Context(), key); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("root is gone: %v", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestModesForStaticServing(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := t.TempDir()
	s := dirstoretest.Open(t, root)
	put(t, s, "images/x/file", []byte("served"), store.PutOptions{})
	for path, want := range map[string]os.FileMode{
		"images":        os.ModeDir | 0o755,
		"images/x":      os.ModeDir | 0o755,
		"images/x/file": 0o644,
	} {
		fi, err := os.Lstat(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
}

func TestSymlinksNeverFollowed(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	s := dirstoretest.Open(t, root)
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "images")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "leak.json")); err != nil {
		t.Fatal(err)
	}

	// A symlinked directory deeper down, too.
	put(t, s, "deep/obj", []byte("x"), store.PutOptions{})
	if err := os.Symlink(outside, filepath.Join(root, "deep/link")); err != nil {
		t.Fatal(err)
	}

	for _, key := range []string{"images/new", "deep/link/new", "deep/link/sub/new"} {
		_, err := s.Put(t.Context(), key, strings.NewReader("x"), 1, store.PutOptions{})
		if err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("Put(%q) through a symlinked directory: %v; want a symlink error", key, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("Put created files outside the root: %v", entries)
	}
	if err := s.Delete(t.Context(), "deep/link/secret"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Delete through a symlinked directory: %v; want a symlink error", err)
	}
	if !exists(secret) {
		t.Fatalf("Delete removed a file outside the root")
	}
	for _, key := range []string{"images/secret", "leak.json", "deep/link/secret"} {
		if _, err := s.Stat(t.Context(), key); err == nil {
			t.Errorf("Stat(%q) followed a symlink", key)
		}
		if rc, _, err := s.Get(t.Context(), key); err == nil {
			rc.Close()
			t.Errorf("Get(%q) followed a symlink", key)
		}
	}
	if list := listed(t, s, ""); len(list) != 1 || list[0].Key != "deep/obj" {
		t.Errorf("List = %+v; want symlinks skipped", list)
	}
	if list := listed(t, s, "images/"); len(list) != 0 {
		t.Errorf("List(images/) = %+v; want symlinks skipped", list)
	}
}

func TestKeyCollisions(t *testing.T) {
	s := dirstoretest.Open(t, t.TempDir())
	put(t, s, "a/b", []byte("file"), store.PutOptions{})
	for key, why := range map[string]string{"a": "is a directory", "a/b/c": `"a/b" is a file`} {
		_, err := s.Put(t.Context(), key, bytes.NewReader(nil), 0, store.PutOptions{})
		if err == nil || !strings.Contains(err.Error(), why) ||
			errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrPreconditionFailed) {
			t.Errorf("Put(%q) next to a/b: %v; want a collision error saying %q", key, err, why)
		}
	}
	if _, err := s.Stat(t.Context(), "a/b/c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat(a/b/c) = %v, want ErrNotFound", err)
	}
	wantInfo(t, s, "a/b", []byte("file"))
}

func TestSegmentTooLongForFileSystem(t *testing.T) {
	s := dirstoretest.Open(t, t.TempDir())
	long := strings.Repeat("n", 300) // a valid key, but NAME_MAX is 255
	for _, key := range []string{long, long + "/x", "x/" + long} {
		_, err := s.Put(t.Context(), key, strings.NewReader("x"), 1, store.PutOptions{})
		if !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Put(%.20q...) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(t.Context(), key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Stat(%.20q...) = %v, want ErrInvalidKey", key, err)
		}
	}
}
