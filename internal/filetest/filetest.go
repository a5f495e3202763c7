// Package filetest reads, writes and copies files for tests, failing the
// test at the first error: the few lines every test package otherwise
// writes again.
package filetest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/incus-appliance/registry/internal/digest"
)

// update, set by go test -update, makes Golden rewrite the golden files.
var update = flag.Bool("update", false, "rewrite the golden files")

// Read returns the bytes of the file at path.
func Read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Write writes data to the file at path (mode 0644), making the folders
// it needs.
func Write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// WriteTree writes files, slash-separated paths under dir to their
// contents, into the folder dir.
func WriteTree(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		Write(t, filepath.Join(dir, filepath.FromSlash(name)), data)
	}
}

// Golden compares got, byte for byte, with the golden file at path; with
// go test -update it writes got there first.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		Write(t, path, got)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// Copy copies the folder src to a new folder of the test's and returns
// it. The copies are writable whatever the originals' modes.
func Copy(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// Snapshot returns the SHA-256 of every file under dir, by path: equal
// snapshots (maps.Equal) mean no file under dir was added, removed or
// changed.
func Snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = digest.Of(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
