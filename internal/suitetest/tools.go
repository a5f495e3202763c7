package suitetest

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTools skips the test when one of the tools is not on PATH, or
// fails it when REGISTRY_E2E=require (as `make test` and CI set), where
// every tool must be installed (scripts/install-deps.sh).
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("REGISTRY_E2E") == "require" {
				t.Fatalf("%s not found: run scripts/install-deps.sh", tool)
			}
			t.Skipf("%s not found (scripts/install-deps.sh installs it)", tool)
		}
	}
}
