package terraform

import (
	"strings"
	"testing"
)

// TestTerraformCLI runs terraform itself, offline, on a copy of the
// configuration: fmt, init, validate, and `terraform test`, whose
// tests/*.tftest.hcl cover every module on a mocked AWS provider
// (variable validation included).
func TestTerraformCLI(t *testing.T) {
	tf := requireTerraform(t)
	t.Parallel()
	dir := copyConfig(t)
	tf.run(t, dir, nil, "fmt", "-check", "-recursive", "-diff")
	tf.run(t, dir, nil, "init", "-backend=false", "-input=false")
	tf.run(t, dir, nil, "validate")
	out := tf.run(t, dir, nil, "test")
	t.Logf("terraform test: %s", lastLine(out))
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
