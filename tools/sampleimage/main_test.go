package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/tooltest"
)

func TestRun(t *testing.T) {
	tooltest.Require(t, "mksquashfs")
	out := filepath.Join(t.TempDir(), "img")
	var stdout, stderr bytes.Buffer
	err := run([]string{"-out", out, "-name", "demo", "-arch", "aarch64", "-created", "2026-11-25T12:00:00Z"}, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.Inspect(context.Background(), filepath.Join(out, "incus.tar.xz"), filepath.Join(out, "rootfs.squashfs"), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	md := img.Metadata
	if img.RootKind != catalog.RootSquashfs || md.Arch != "arm64" || md.OS != "demo" || md.CreationDate.Unix() != 1795608000 ||
		md.Description != "demo sample image (not a real OS)" || md.Serial != "20261125_1200" {
		t.Errorf("got %+v", img)
	}
	if !strings.Contains(stdout.String(), img.Fingerprint) {
		t.Errorf("stdout %q lacks the fingerprint", stdout.String())
	}
	again := filepath.Join(t.TempDir(), "again")
	stdout.Reset()
	if err := run([]string{"-out", again, "-name", "demo", "-arch", "arm64", "-created", "2026-11-25T12:00:00Z"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), img.Fingerprint) {
		t.Errorf("same flags, different image: %q, want fingerprint %s", stdout.String(), img.Fingerprint)
	}
	if out, err := exec.Command("unsquashfs", "-cat", filepath.Join(out, "rootfs.squashfs"), "README").Output(); err == nil &&
		!strings.Contains(string(out), "sample") {
		t.Errorf("README: %q", out)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-out DIR is required"},
		{[]string{"-out", "x", "-arch", "sparc"}, `-arch: unknown architecture "sparc"`},
		{[]string{"-out", "x", "-name", "Bad Name"}, `-name "Bad Name"`},
		{[]string{"-out", "x", "-created", "yesterday"}, `-created "yesterday"`},
		{[]string{"-out", "x", "extra"}, `unexpected argument "extra"`},
	} {
		if _, err := parse(tc.args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.args, err, tc.want)
		}
	}
}
