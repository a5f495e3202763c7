package dirstore

import (
	"os"
	"path/filepath"
	"testing"
)

// A Put that fails after creating the key's directories removes them
// again, but only the empty ones.
func TestChainUndo(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "p"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "p/keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	c, err := openChain(s.fd, []string{"p", "q", "r"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if !c.created {
		t.Errorf("openChain did not report creating q and r")
	}
	c.undo()
	c.close()
	if _, err := os.Lstat(filepath.Join(root, "p/q")); !os.IsNotExist(err) {
		t.Errorf("p/q still exists after undo (%v)", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "p/keep")); err != nil {
		t.Errorf("undo removed too much: %v", err)
	}

	// Nothing created: nothing removed, even if empty.
	if err := os.Mkdir(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err = openChain(s.fd, []string{"empty"}, true)
	if err != nil {
		t.Fatal(err)
	}
	c.undo()
	c.close()
	if _, err := os.Lstat(filepath.Join(root, "empty")); err != nil {
		t.Errorf("undo removed a directory it did not create: %v", err)
	}
}
