package vmdisk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/suitetest"
)

// requireTools skips without the disk tools, unless REGISTRY_E2E=require
// (make test, CI), where a missing tool fails.
func requireTools(t *testing.T) {
	t.Helper()
	suitetest.RequireTools(t, Tools...)
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var efiBinary = "MZ" + strings.Repeat("\x90", 70000) // spans clusters

func assemble(t *testing.T, esp map[string]string, compress bool) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "disk.qcow2")
	root := writeTree(t, map[string]string{"sbin/init": "#!/bin/sh\n", "etc/hostname": "vm\n"})
	err := Assemble(context.Background(), DiskOptions{ESPDir: writeTree(t, esp), ESPMiB: 40, RootDir: root, FreeMiB: 8, Out: out, Compress: compress,
		RootPartUUID: "6c3d9c3e-8e4b-4d7c-9a55-2f0d1b8e7a11"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A disk assembled from a tree is bootable, compressed or not; the check
// reads the boot loader through qcow2, GPT and FAT, and agrees with
// qemu-img and sgdisk about the layout.
func TestAssembleBootableDisk(t *testing.T) {
	requireTools(t)
	for _, compress := range []bool{false, true} {
		disk := assemble(t, map[string]string{"EFI/BOOT/BOOTX64.EFI": efiBinary, "loader/loader.conf": "timeout 0\n"}, compress)
		if err := CheckBootable(disk, "amd64"); err != nil {
			t.Errorf("compress=%v: %v", compress, err)
		}
		if out, err := exec.Command("qemu-img", "check", disk).CombinedOutput(); err != nil {
			t.Errorf("qemu-img check: %v\n%s", err, out)
		}
		if err := CheckBootable(disk, "arm64"); err == nil || !strings.Contains(err.Error(), "BOOTAA64.EFI") {
			t.Errorf("an amd64 disk checked for arm64: %v", err)
		}
	}
}

func TestNotBootable(t *testing.T) {
	requireTools(t)
	blank := filepath.Join(t.TempDir(), "blank.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-f", "qcow2", blank, "64M").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	raw := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(raw, make([]byte, 1<<20), 0o644)
	cases := map[string]struct{ disk, want string }{
		"not qcow2":         {raw, "not a qcow2 image"},
		"no partitions":     {blank, "no GPT partition table"},
		"no boot loader":    {assemble(t, map[string]string{"EFI/debian/grubx64.efi": efiBinary}, false), "the firmware finds no boot loader (EFI/BOOT/BOOTX64.EFI)"},
		"not an EFI binary": {assemble(t, map[string]string{"EFI/BOOT/BOOTX64.EFI": "#!/bin/sh\n"}, true), "not an EFI executable"},
	}
	for name, c := range cases {
		err := CheckBootable(c.disk, "amd64")
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err %v, want one line containing %q", name, err, c.want)
		}
	}
}
