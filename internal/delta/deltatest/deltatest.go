// Package deltatest helps tests that need the real xdelta3.
package deltatest

import (
	"os"
	"testing"

	"github.com/incus-appliance/registry/internal/delta"
)

// Require skips the test when xdelta3 is missing, or fails it when
// REGISTRY_E2E=require (as `make test` and CI set).
func Require(t testing.TB) {
	t.Helper()
	if err := delta.Available(); err != nil {
		if os.Getenv("REGISTRY_E2E") == "require" {
			t.Fatalf("%v: needed by this test", err)
		}
		t.Skipf("%v: skipping", err)
	}
}
