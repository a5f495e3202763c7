package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/image/imagetest"
	"github.com/incus-appliance/registry/internal/registry"
)

// runPublish runs a command line in process and returns its exit code and
// what it printed.
func runPublish(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// signT0 is when the sample images of the tests were made.
var signT0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// mustRun runs a command line and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runPublish(t, args...)
	if code != 0 {
		t.Fatalf("publish %s = %d:\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// verifyJSON runs verify --json with args and returns its report and exit
// code.
func verifyJSON(t *testing.T, args ...string) (*registry.VerifyReport, int) {
	t.Helper()
	code, stdout, stderr := runPublish(t, append([]string{"verify", "--json"}, args...)...)
	var rep registry.VerifyReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("verify --json = %d, %q, %q: %v", code, stdout, stderr, err)
	}
	return &rep, code
}

// wantRefused runs a command line that must be refused (bad input): a
// non-zero exit with one line on stderr saying want, and the folder dir
// (the registry it writes to) byte for byte as it was.
func wantRefused(t *testing.T, dir, want string, args ...string) {
	t.Helper()
	before := filetest.Snapshot(t, dir)
	code, _, stderr := runPublish(t, args...)
	if code == 0 || !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Errorf("exit %d, stderr %q: want a one-line refusal saying %q", code, stderr, want)
	}
	if after := filetest.Snapshot(t, dir); !maps.Equal(before, after) {
		t.Errorf("%s changed: %d files, had %d", dir, len(after), len(before))
	}
}

// sampleArgs writes a sample image of appliance name created at created and
// returns the arguments that publish it.
func sampleArgs(t *testing.T, name string, created time.Time) []string {
	t.Helper()
	dir := t.TempDir()
	meta := imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec(name, created))
	root := imagetest.WriteSquashfs(t, dir, 64<<10, created.Unix())
	return []string{name, "--metadata", meta, "--rootfs", root}
}
