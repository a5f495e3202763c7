package filetest

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// A tree written, copied and read back: the copy has every file, under
// folders made on the way, and is writable though the original is not.
func TestWriteCopyRead(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{"a": []byte("one"), "b/c/d.json": []byte("two")}
	WriteTree(t, dir, files)
	if err := os.Chmod(filepath.Join(dir, "a"), 0o444); err != nil {
		t.Fatal(err)
	}
	cp := Copy(t, dir)
	for name, want := range files {
		if got := Read(t, filepath.Join(cp, filepath.FromSlash(name))); !bytes.Equal(got, want) {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	Write(t, filepath.Join(cp, "a"), []byte("changed"))
	if got := Read(t, filepath.Join(dir, "a")); string(got) != "one" {
		t.Errorf("the original changed with its copy: %q", got)
	}
}

// A golden file equal to what a test got passes.
func TestGoldenEqual(t *testing.T) {
	path := filepath.Join(t.TempDir(), "golden.json")
	Write(t, path, []byte("{}\n"))
	Golden(t, path, []byte("{}\n"))
}

// A snapshot changes with a file's content, and with a file added.
func TestSnapshot(t *testing.T) {
	dir := t.TempDir()
	WriteTree(t, dir, map[string][]byte{"a": []byte("one"), "b/c": []byte("two")})
	before := Snapshot(t, dir)
	if len(before) != 2 {
		t.Fatalf("%d files in the snapshot, want 2: %v", len(before), before)
	}
	if !maps.Equal(Snapshot(t, dir), before) {
		t.Error("two snapshots of an unchanged folder differ")
	}
	Write(t, filepath.Join(dir, "b/c"), []byte("three"))
	if maps.Equal(Snapshot(t, dir), before) {
		t.Error("a changed file left the snapshot as it was")
	}
	Write(t, filepath.Join(dir, "b/c"), []byte("two"))
	Write(t, filepath.Join(dir, "d"), nil)
	if maps.Equal(Snapshot(t, dir), before) {
		t.Error("an added empty file left the snapshot as it was")
	}
}
