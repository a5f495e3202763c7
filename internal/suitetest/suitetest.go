// Package suitetest runs a package's whole test suite a second time, in a
// child process of its test binary with one environment variable set: one
// `go test` covers a second configuration (a registry of several catalog
// files) without every test taking a parameter. RequireTools is the one
// rule for a test that needs a tool: skipped without it, failed under
// REGISTRY_E2E=require.
package suitetest

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// Count returns environment variable name as a count: its value, or 1
// when it is unset or not a positive number.
func Count(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return max(n, 1)
}

// RunAgain runs every test of the calling package again with name=value,
// and fails with the child's output when any fails. In the child run
// (name already set) it skips.
func RunAgain(t *testing.T, name, value string) {
	t.Helper()
	if os.Getenv(name) != "" {
		t.Skip("this is the run with " + name + " set")
	}
	cmd := exec.Command(os.Args[0], "-test.count=1", "-test.timeout=20m")
	cmd.Env = append(os.Environ(), name+"="+value)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the suite with %s=%s failed: %v\n%s", name, value, err, out)
	}
}
