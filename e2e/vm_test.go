package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/tooltest"
	"github.com/incus-appliance/registry/internal/vmdisk"
)

// vmDisk assembles a VM disk with the real disk tools: a GPT with an EFI
// system partition holding loader as EFI/BOOT/BOOTX64.EFI and, when files
// is not nil, a root partition holding files (paths to contents); opts
// gives the rest (compression, a reproducible build's identity and epoch).
func vmDisk(t *testing.T, loader string, files map[string]string, opts vmdisk.DiskOptions) string {
	t.Helper()
	for _, tool := range vmdisk.Tools {
		requireTool(t, tool)
	}
	opts.ESPDir, opts.ESPMiB, opts.Out = t.TempDir(), 34, filepath.Join(t.TempDir(), "disk.qcow2")
	filetest.Write(t, filepath.Join(opts.ESPDir, "EFI/BOOT/BOOTX64.EFI"), []byte(loader))
	if files != nil {
		opts.RootDir = t.TempDir()
		for name, content := range files {
			filetest.Write(t, filepath.Join(opts.RootDir, name), []byte(content))
		}
	}
	if err := vmdisk.Assemble(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	return opts.Out
}

// efiLoader stands in for a boot loader: a PE file's magic, then zeros.
var efiLoader = "MZ" + strings.Repeat("\x00", 4096)

// A version with a container root and a VM disk: the real Incus client
// lists two images of one alias, the disk as VIRTUAL-MACHINE; it exports
// the VM image (downloading and checking the disk against the combined
// fingerprint); publish list shows both types, and verify checks both.
func TestIncusClientReadsVMImage(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry")
	meta, root := sampleImage(t, "nginx", t0, 1)
	disk := vmDisk(t, efiLoader, nil, vmdisk.DiskOptions{Compress: true})
	out := mustPublish(t, "nginx", "--bucket", reg, "--metadata", meta, "--rootfs", root, "--disk", disk, "--json")
	if !strings.Contains(out, "disk.qcow2") {
		t.Errorf("publish did not upload the disk: %s", out)
	}
	fpC, fpVM := fingerprintOf(t, meta, root), fingerprintOf(t, meta, disk)
	mustPublish(t, "verify", "--bucket", reg)

	entries := list(t, reg)
	types := map[string]string{}
	for _, e := range entries {
		types[e.Fingerprint] = e.Type
	}
	if types[fpC] != "container" || types[fpVM] != "virtual-machine" || len(types) != 2 {
		t.Errorf("publish list types %v", types)
	}
	if table := mustPublish(t, "list", "--bucket", reg); !strings.Contains(table, "virtual-machine") || !strings.Contains(table, "TYPE") {
		t.Errorf("publish list table:\n%s", table)
	}

	url, cert := serveHTTPS(t, reg)
	incus := remoteClient(t, "incus", "reg", url, cert)
	got := map[string]string{}
	for _, im := range incus.images(t, "reg") {
		got[im.Fingerprint] = im.Type
		if len(im.Aliases) == 0 {
			t.Errorf("image %s (%s) has no alias", im.Fingerprint[:12], im.Type)
		}
	}
	if got[fpC] != "container" || got[fpVM] != "virtual-machine" || len(got) != 2 {
		t.Fatalf("incus image list: %v, want %s container and %s virtual-machine", got, fpC[:12], fpVM[:12])
	}
	if table := incus.run(t, "image", "list", "reg:", "--format", "csv", "--columns", "ft"); !strings.Contains(table, "VIRTUAL-MACHINE") {
		t.Errorf("incus image list does not show VIRTUAL-MACHINE:\n%s", table)
	}
	if info := incus.run(t, "image", "info", "reg:"+fpVM); !strings.Contains(info, "virtual-machine") {
		t.Errorf("incus image info of the VM image:\n%s", info)
	}

	dir := t.TempDir()
	incus.run(t, "image", "export", "reg:"+fpVM, dir)
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	var exportedMeta, exportedDisk string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.HasPrefix(string(b), "QFI\xfb") {
			exportedDisk = f
		} else {
			exportedMeta = f
		}
	}
	if len(files) != 2 || exportedDisk == "" {
		t.Fatalf("export wrote %v, want metadata and a qcow2", files)
	}
	if f := fingerprintOf(t, exportedMeta, exportedDisk); f != fpVM {
		t.Errorf("exported VM image has fingerprint %s, want %s", f, fpVM)
	}
	if !sameFile(t, exportedDisk, disk) {
		t.Error("exported disk differs from the published one")
	}
}

// Bad VM input: a disk that cannot boot, or --vm for an appliance without
// the vm type: one clear line, nothing published.
func TestBadVMInputChangesNothing(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry")
	meta, root := sampleImage(t, "nginx", t0, 1)
	mustPublish(t, "nginx", "--bucket", reg, "--metadata", meta, "--rootfs", root)
	imagesJSON := filepath.Join(reg, "streams/v1/images.json")
	before, _ := os.ReadFile(imagesJSON)

	blank := filepath.Join(t.TempDir(), "blank.qcow2")
	tooltest.Run(t, requireTool(t, "qemu-img"), "create", "-f", "qcow2", blank, "64M")
	notEFI := vmDisk(t, "#!/bin/sh\necho not an EFI binary\n", nil, vmdisk.DiskOptions{Compress: true})
	meta2, root2 := sampleImage(t, "nginx", t0.Add(24*3600e9), 2)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"nginx", "--bucket", reg, "--metadata", meta2, "--rootfs", root2, "--disk", blank}, "no GPT partition table"},
		{[]string{"nginx", "--bucket", reg, "--metadata", meta2, "--rootfs", root2, "--disk", notEFI}, "not an EFI executable"},
		{[]string{"vm", "--bucket", reg, "--metadata", meta2, "--rootfs", blank}, "is not bootable"},
		{[]string{"nginx", "--bucket", reg, "--metadata", meta2, "--rootfs", root2, "--disk", root}, "not a qcow2"},
		{[]string{"build", "redis", "--vm", "--appliances", filepath.Join(repoRoot(t), "appliances")}, "does not declare the vm type"},
	} {
		r := publish(t, c.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code == 0 || len(lines) != 1 || !strings.Contains(lines[0], c.want) {
			t.Errorf("publish %v: exit %d, stderr %q, want one line containing %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if after, _ := os.ReadFile(imagesJSON); string(after) != string(before) {
		t.Error("bad VM input changed images.json")
	}
}
