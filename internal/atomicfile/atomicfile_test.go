package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// A file written, then replaced: each time the whole content with the
// mode asked for, and no temporary file left beside it.
func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, c := range []struct {
		data string
		perm os.FileMode
	}{{"first\n", 0o600}, {"second, longer\n", 0o644}} {
		if err := Write(path, []byte(c.data), c.perm); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != c.data {
			t.Fatalf("read back %q, %v; want %q", got, err, c.data)
		}
		if st, err := os.Stat(path); err != nil {
			t.Fatal(err)
		} else if st.Mode().Perm() != c.perm {
			t.Errorf("mode %v, want %v", st.Mode().Perm(), c.perm)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("%d files in the folder, want 1", len(entries))
		}
	}
}

// A folder that does not exist is an error, and nothing is written.
func TestWriteMissingFolder(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "missing", "f"), []byte("x"), 0o644); err == nil {
		t.Fatal("no error for a missing folder")
	}
}
