// Package e2e runs the built `publish` binary against real registries and
// reads them with the real Incus and LXD clients.
//
// Set REGISTRY_E2E=require (as `make test` and CI do) to make a missing
// client a failure instead of a skip.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// publishBin and edgeproxyBin are the binaries built for this test run.
var publishBin, edgeproxyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	publishBin, edgeproxyBin = filepath.Join(dir, "publish"), filepath.Join(dir, "edgeproxy")
	build := exec.Command("go", "build", "-o", dir, "../cmd/publish", "../cmd/edgeproxy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a command printed and how it exited.
type result struct {
	stdout, stderr string
	code           int
}

// publish runs the publish binary with args.
func publish(t testing.TB, args ...string) result {
	t.Helper()
	return publishEnv(t, nil, args...)
}

// publishEnv runs the publish binary with args and extra environment.
func publishEnv(t testing.TB, env []string, args ...string) result {
	t.Helper()
	return publishWithin(t, 2*time.Minute, env, args...)
}

// publishWithin runs the publish binary with args and extra environment,
// killing it after timeout.
func publishWithin(t testing.TB, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, publishBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run publish %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// mustPublish runs publish and fails the test unless it exits 0.
func mustPublish(t testing.TB, args ...string) string {
	t.Helper()
	return mustPublishEnv(t, nil, args...)
}

// mustPublishEnv is mustPublish with extra environment.
func mustPublishEnv(t testing.TB, env []string, args ...string) string {
	t.Helper()
	r := publishEnv(t, env, args...)
	if r.code != 0 {
		t.Fatalf("publish %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// requireTool returns the path of a client binary, skipping the test when
// it is missing unless REGISTRY_E2E=require.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s not found: install it (see .ci/run) to run this test", name)
		if os.Getenv("REGISTRY_E2E") == "require" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}
