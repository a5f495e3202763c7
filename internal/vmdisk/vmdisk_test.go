package vmdisk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/suitetest"
	"github.com/incus-appliance/registry/internal/tooltest"
)

// requireTools skips without the disk tools, unless REGISTRY_E2E=require
// (make test, CI), where a missing tool fails.
func requireTools(t *testing.T) {
	t.Helper()
	suitetest.RequireTools(t, Tools...)
}

// writeTree writes files (paths to contents) into a new folder, which it
// returns.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		filetest.Write(t, filepath.Join(dir, name), []byte(content))
	}
	return dir
}

var efiBinary = "MZ" + strings.Repeat("\x90", 70000) // spans clusters

func assemble(t *testing.T, esp map[string]string, compress bool) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "disk.qcow2")
	root := writeTree(t, map[string]string{"sbin/init": "#!/bin/sh\n", "etc/hostname": "vm\n"})
	err := Assemble(context.Background(), DiskOptions{ESPDir: writeTree(t, esp), ESPMiB: 40, RootDir: root, FreeMiB: 8, Out: out, Compress: compress,
		Identity: "test", Epoch: testEpoch})
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
		tooltest.Run(t, "qemu-img", "check", disk)
		if err := CheckBootable(disk, "arm64"); err == nil || !strings.Contains(err.Error(), "BOOTAA64.EFI") {
			t.Errorf("an amd64 disk checked for arm64: %v", err)
		}
	}
}

func TestNotBootable(t *testing.T) {
	requireTools(t)
	blank := filepath.Join(t.TempDir(), "blank.qcow2")
	tooltest.Run(t, "qemu-img", "create", "-f", "qcow2", blank, "64M")
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

// testEpoch is the disks' SOURCE_DATE_EPOCH (2026-01-01).
const testEpoch = 1767225600

// reproducible assembles a disk with an identity from a fresh tree of
// files.
func reproducible(t *testing.T, files map[string]string, compress bool) (disk, raw string) {
	t.Helper()
	dir := t.TempDir()
	disk = filepath.Join(dir, "disk.qcow2")
	esp := writeTree(t, map[string]string{"EFI/BOOT/BOOTX64.EFI": efiBinary, "loader/loader.conf": "timeout 0\n"})
	if err := Assemble(context.Background(), DiskOptions{ESPDir: esp, ESPMiB: 40, RootDir: writeTree(t, files), FreeMiB: 8, Out: disk,
		Identity: "nginx/default/amd64", Epoch: testEpoch, Compress: compress}); err != nil {
		t.Fatal(err)
	}
	raw = filepath.Join(dir, "disk.raw")
	tooltest.Run(t, "qemu-img", "convert", "-O", "raw", disk, raw)
	return disk, raw
}

// Assembled with an identity, the same trees (written at other times)
// give the same disk byte for byte, compressed or not: GUIDs and UUIDs from the identity,
// every time the disk records no later than the epoch (the ext4 inodes'
// change times included, which mke2fs copies from the tree). One changed
// file changes few bytes of it.
func TestAssembleReproducible(t *testing.T) {
	requireTools(t)
	files := map[string]string{"sbin/init": "#!/bin/sh\n", "etc/hostname": "vm\n", "var/www/index.html": strings.Repeat("<p>hello</p>\n", 500)}
	disk1, raw1 := reproducible(t, files, false)
	disk2, _ := reproducible(t, files, false)
	if !sameBytes(t, disk1, disk2) {
		t.Fatal("the same trees gave two different disks")
	}
	if c1, _ := reproducible(t, files, true); !sameBytes(t, c1, diskOf(reproducible(t, files, true))) {
		t.Fatal("the same trees gave two different compressed disks")
	}
	if id := RootPartUUID("nginx/default/amd64"); len(id) != 36 || id == RootPartUUID("nginx/default/arm64") {
		t.Errorf("RootPartUUID %q", id)
	}
	// The root file system's times, read back with debugfs.
	out := tooltest.Run(t, "sgdisk", "-i", "2", raw1)
	if !strings.Contains(strings.ToLower(string(out)), RootPartUUID("nginx/default/amd64")) {
		t.Fatalf("sgdisk -i 2 names another root partition:\n%s", out)
	}
	first := regexp.MustCompile(`First sector: (\d+)`).FindStringSubmatch(string(out))
	if first == nil {
		t.Fatalf("no first sector in:\n%s", out)
	}
	off, _ := strconv.ParseInt(first[1], 10, 64)
	stat := tooltest.Run(t, "debugfs", "-R", "stat /etc/hostname", fmt.Sprintf("%s?offset=%d", raw1, off*sector))
	for _, field := range []string{"ctime", "atime", "mtime", "crtime"} {
		if !regexp.MustCompile(field + `: 0x6955b900`).Match(stat) {
			t.Errorf("/etc/hostname's %s is not the epoch:\n%s", field, stat)
		}
	}
	// One changed file: the disk differs in a few blocks.
	files["var/www/index.html"] += "<!-- changed -->\n"
	disk3, _ := reproducible(t, files, false)
	if n := differingBytes(t, disk1, disk3); n == 0 || n > 16<<10 {
		t.Errorf("one changed file changed %d bytes of the disk", n)
	}
}

// diskOf is the disk of reproducible's results.
func diskOf(disk, _ string) string { return disk }

func sameBytes(t *testing.T, a, b string) bool {
	return differingBytes(t, a, b) == 0
}

// differingBytes counts the bytes that differ between two files (the
// longer one's tail included).
func differingBytes(t *testing.T, a, b string) int {
	t.Helper()
	da, db := filetest.Read(t, a), filetest.Read(t, b)
	n := max(len(da), len(db)) - min(len(da), len(db))
	for i := range min(len(da), len(db)) {
		if da[i] != db[i] {
			n++
		}
	}
	return n
}
