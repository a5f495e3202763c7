package terraform

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// gate is the environment variable that turns on the tests running
// terraform (and MinIO): they are slow, `make test-terraform` sets it.
const gate = "REGISTRY_TERRAFORM"

// defaultPluginDir is where this machine image keeps provider binaries, in
// the layout of a filesystem mirror.
const defaultPluginDir = "/opt/tf-plugins"

// tf runs the terraform CLI offline: providers come from a filesystem
// mirror, never from the registry.
type tf struct {
	bin string
	env []string
}

// requireTerraform returns a terraform set up for offline use, or skips
// the test when the gate is off or terraform or the AWS provider is
// missing.
func requireTerraform(t *testing.T) *tf {
	t.Helper()
	if os.Getenv(gate) == "" {
		t.Skipf("set %s=1 (make test-terraform) to run terraform", gate)
	}
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform not on PATH")
	}
	pluginDir := os.Getenv("TF_PLUGIN_DIR")
	if pluginDir == "" {
		pluginDir = defaultPluginDir
	}
	platform := runtime.GOOS + "_" + runtime.GOARCH
	found, _ := filepath.Glob(filepath.Join(pluginDir, "registry.terraform.io/hashicorp/aws/*", platform))
	if len(found) == 0 {
		t.Skipf("no hashicorp/aws provider for %s under %s (TF_PLUGIN_DIR)", platform, pluginDir)
	}
	provider := found[len(found)-1]
	version := filepath.Base(filepath.Dir(provider))

	// A mirror holding a link to the provider's directory (linking the
	// binary instead would change the lock-file hash).
	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	link := filepath.Join(mirror, "registry.terraform.io/hashicorp/aws", version, platform)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(provider, link); err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(dir, "terraform.rc")
	cfg := fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["*/*/*"]
  }
}
`, mirror)
	if err := os.WriteFile(cli, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return &tf{bin: bin, env: []string{
		"TF_CLI_CONFIG_FILE=" + cli, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "TF_INPUT=0",
	}}
}

// run runs terraform in dir with extra environment and returns its
// output; a failure fails the test with the output.
func (tf *tf) run(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := tf.try(t, dir, env, args...)
	if err != nil {
		t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// try runs terraform in dir and returns its output and error. The
// environment is this process's without any TF_ setting, plus tf.env and
// env.
func (tf *tf) try(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tf.bin, append([]string{args[0], "-no-color"}, args[1:]...)...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TF_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, tf.env...), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("terraform %s: %s", args[0], time.Since(start).Round(100*time.Millisecond))
	return string(out), err
}

// copyConfig copies the Terraform configuration (.tf and .tftest.hcl
// files) into a fresh directory, so that init, state and lock files stay
// out of the source tree.
func copyConfig(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != "." {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, path), 0o755)
		}
		if !strings.HasSuffix(path, ".tf") && !strings.HasSuffix(path, ".tftest.hcl") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, path), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
