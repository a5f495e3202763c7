package suitetest

import (
	"testing"

	"github.com/incus-appliance/registry/internal/tooltest"
)

// RequireTools skips the test when one of the tools is not on PATH, or
// fails it when REGISTRY_E2E=require (as `make test` and CI set), where
// every tool must be installed (scripts/install-deps.sh).
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	tooltest.Require(t, tools...)
}
