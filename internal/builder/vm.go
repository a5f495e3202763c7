package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/vmdisk"
)

// vmKernel is the Debian kernel package of each architecture.
var vmKernel = map[string]string{"amd64": "linux-image-amd64", "arm64": "linux-image-arm64"}

// vmOverlay is what a VM needs beyond the container's root: a kernel (its
// initramfs made by initramfs-tools), systemd-boot's UEFI binary, DHCP on
// the VM's NIC (enp5s0 under Incus, ens3/enp0s2 under plain QEMU) and the
// root file system in fstab.
const vmOverlay = `
sets:
- packages: [%s, systemd-boot-efi, initramfs-tools]
  action: install
  flags: [--no-install-recommends]
files:
- path: /etc/systemd/network/en.network
  generator: dump
  content: |
    [Match]
    Name=en*

    [Network]
    DHCP=ipv4
- path: /etc/fstab
  generator: dump
  content: |
    LABEL=root / ext4 defaults,errors=remount-ro 0 1
`

// vmDiskFormat names how makeDisk lays the disk out; it is one of the VM
// build's inputs, so a disk made another way is built again.
const vmDiskFormat = "reproducible"

// VM builds the appliance's bootable VM disk for target t beside its
// container build, which must exist (its metadata tarball is shared):
// distrobuilder build-dir makes the root tree with the VM overlay, then
// vmdisk.Assemble makes a GPT disk with an EFI system partition
// (systemd-boot as EFI/BOOT/BOOTX64.EFI, the kernel and initramfs, one
// boot entry) and an ext4 root, mounting nothing. distrobuilder's own
// --vm mounts partitions on loop devices, which needs a kernel with vfat
// and loop partition scanning.
func VM(ctx context.Context, a *appliance.Appliance, t Target, opts Options) (*Result, error) {
	if !a.HasVM() {
		return nil, fmt.Errorf("build %s --vm: %s does not declare the vm type (appliance.yaml types: [container, vm])", a.Name, a.Name)
	}
	kernel, ok := vmKernel[t.Arch]
	loader, ok2 := vmdisk.BootLoader(t.Arch)
	if !ok || !ok2 {
		return nil, fmt.Errorf("build %s --vm: no VM support for %s", a.Name, t.Arch)
	}
	if err := opts.resolve(&t); err != nil {
		return nil, err
	}
	tmpl, err := a.VariantTemplate(t.Variant)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", a.Name, err)
	}
	if tmpl, err = appliance.ExtendTemplate(tmpl, fmt.Sprintf(vmOverlay, kernel)); err != nil {
		return nil, fmt.Errorf("build %s --vm: %w", a.Name, err)
	}
	res := &Result{Dir: t.Dir(), Metadata: t.Metadata(), Disk: t.Disk(), Log: t.file(vmLogFile)}
	if !exist(res.Metadata) {
		return nil, fmt.Errorf("build %s --vm: no container build in %s: the disk is published beside it (run publish build %s first)", a.Name, res.Dir, a.Name)
	}
	version, err := toolVersion(ctx, opts.Distrobuilder)
	if err != nil {
		return nil, err
	}
	// The VM template (merged base and overlay, the variant's additions,
	// the VM overlay) stands for the base.
	if res.Inputs, err = inputsHash(a.Dir, version, t.Arch, "vm", vmDiskFormat, string(tmpl)); err != nil {
		return nil, err
	}
	stamp := t.file(vmInputsFile)
	if old, err := os.ReadFile(stamp); err == nil && !opts.Force && string(old) == res.Inputs && exist(res.Disk) {
		res.Skipped = true
		return res, nil
	}
	work, err := os.MkdirTemp(filepath.Dir(res.Dir), ".vm-"+t.Arch+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := makeDisk(ctx, a, t, opts, tmpl, loader, work); err != nil {
		return nil, fmt.Errorf("build %s --vm: %w", t.Label(), err)
	}
	if err := os.Rename(filepath.Join(work, diskFile), res.Disk); err != nil {
		return nil, err
	}
	_ = os.Rename(filepath.Join(work, logFile), res.Log)
	return res, os.WriteFile(stamp, []byte(res.Inputs), 0o644)
}

// makeDisk makes work/disk.qcow2 from the VM template: distrobuilder
// build-dir, the EFI system partition, vmdisk.Assemble.
func makeDisk(ctx context.Context, a *appliance.Appliance, t Target, opts Options, tmpl []byte, loader, work string) error {
	rootfs, logPath := filepath.Join(work, "rootfs"), filepath.Join(work, logFile)
	tmplPath := filepath.Join(work, templateFile)
	if err := os.WriteFile(tmplPath, tmpl, 0o644); err != nil {
		return err
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	if err := runDistrobuilder(ctx, a, t, opts, logPath, tmplPath, epoch, "vm", "build-dir", tmplPath, rootfs, "--with-post-files"); err != nil {
		kept := t.failedLog("vm")
		_ = os.Rename(logPath, kept)
		return fmt.Errorf("%w (log: %s)", err, kept)
	}
	if opts.Progress != nil {
		opts.Progress("Assembling the disk (EFI system partition + ext4 root)")
	}
	esp := filepath.Join(work, "esp")
	// The disk is reproducible (vmdisk): its identifiers come from the
	// target and its times are the build's epoch, so a small change to
	// the appliance makes a small delta, compressed clusters or not.
	identity := "appliance " + t.Label()
	if err := espTree(rootfs, esp, loader, vmdisk.RootPartUUID(identity)); err != nil {
		return err
	}
	disk := filepath.Join(work, diskFile)
	if err := vmdisk.Assemble(ctx, vmdisk.DiskOptions{ESPDir: esp, RootDir: rootfs, Identity: identity, Epoch: epoch, Out: disk, Compress: opts.Compression == "xz"}); err != nil {
		return err
	}
	return vmdisk.CheckBootable(disk, t.Arch)
}

// espTree lays out the EFI system partition: systemd-boot as the
// removable-media boot loader, the kernel and initramfs, and one entry
// booting the root partition by its GPT unique GUID.
func espTree(rootfs, esp, loader, partUUID string) error {
	kernels, _ := filepath.Glob(filepath.Join(rootfs, "boot", "vmlinuz-*"))
	initrds, _ := filepath.Glob(filepath.Join(rootfs, "boot", "initrd.img-*"))
	boots, _ := filepath.Glob(filepath.Join(rootfs, "usr/lib/systemd/boot/efi/systemd-boot*.efi"))
	if len(kernels) != 1 || len(initrds) != 1 || len(boots) != 1 {
		return fmt.Errorf("the VM root has %d kernels, %d initramfs and %d systemd-boot binaries, want one of each", len(kernels), len(initrds), len(boots))
	}
	files := map[string]string{
		loader:       boots[0],
		"vmlinuz":    kernels[0],
		"initrd.img": initrds[0],
	}
	for dst, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(esp, dst), data); err != nil {
			return err
		}
	}
	entry := "title " + filepath.Base(rootfs) + "\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=PARTUUID=" + partUUID + " rw console=tty0 console=ttyS0\n"
	if err := writeFile(filepath.Join(esp, "loader/entries/appliance.conf"), []byte(strings.Replace(entry, "title rootfs", "title appliance", 1))); err != nil {
		return err
	}
	return writeFile(filepath.Join(esp, "loader/loader.conf"), []byte("default appliance.conf\ntimeout 0\n"))
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
