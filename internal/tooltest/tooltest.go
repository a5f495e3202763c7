// Package tooltest is the one rule for tests that need a real tool (a
// client, xdelta3, MinIO, mksquashfs, ...): without it the test is
// skipped, unless REGISTRY_E2E=require (as `make test` and CI set), where
// a missing tool fails the test, so that nothing is skipped unnoticed.
package tooltest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Required reports whether missing tools fail tests (REGISTRY_E2E=require).
func Required() bool { return os.Getenv("REGISTRY_E2E") == "require" }

// Missing skips the test, or fails it when tools are required, saying why.
func Missing(t testing.TB, why error) {
	t.Helper()
	if Required() {
		t.Fatalf("%v (REGISTRY_E2E=require)", why)
	}
	t.Skipf("%v: skipped", why)
}

// Require returns the path of each named tool on PATH, calling Missing for
// the first one that is not there.
func Require(t testing.TB, names ...string) []string {
	t.Helper()
	paths := make([]string, len(names))
	for i, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			Missing(t, fmt.Errorf("%s not found: install it (scripts/install-deps.sh) to run this test", name))
		}
		paths[i] = p
	}
	return paths
}

// Run runs the tool name (a path, or a name looked up on PATH) with args
// and returns what it wrote to stdout and stderr; a failure to start or a
// non-zero exit fails the test with that output.
func Run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}
