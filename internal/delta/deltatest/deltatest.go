// Package deltatest helps tests that need the real xdelta3.
package deltatest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/incus-appliance/registry/internal/delta"
	"github.com/incus-appliance/registry/internal/tooltest"
)

// Require skips the test when xdelta3 is missing, or fails it when
// REGISTRY_E2E=require (tooltest).
func Require(t testing.TB) {
	t.Helper()
	if err := delta.Available(); err != nil {
		tooltest.Missing(t, err)
	}
}

// CorruptingXdelta3Dir returns a folder holding an xdelta3 that encodes
// with the real one and then corrupts the delta (a broken encoder, bad
// memory, a bad disk): put it first on PATH. It requires the real xdelta3
// as Require does.
func CorruptingXdelta3Dir(t testing.TB) string {
	t.Helper()
	Require(t)
	real, err := exec.LookPath("xdelta3")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := `#!/bin/sh
"` + real + `" "$@" || exit $?
if [ "$1" = -e ]; then
	for out; do :; done
	printf 'XXXXXXXX' | dd of="$out" bs=1 seek=40 conv=notrunc 2>/dev/null
fi
`
	if err := os.WriteFile(filepath.Join(dir, "xdelta3"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
