package appliance

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/incus-appliance/registry/internal/osarch"

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

// BuildVM builds the appliance's bootable VM disk for one architecture
// (and variant) beside its container build, which must exist (its
// metadata tarball is shared): distrobuilder build-dir makes the root
// tree with the VM overlay, then vmdisk.Assemble makes a GPT disk with an
// EFI system partition (systemd-boot as EFI/BOOT/BOOTX64.EFI, the kernel
// and initramfs, one boot entry) and an ext4 root, mounting nothing.
// distrobuilder's own --vm mounts partitions on loop devices, which needs
// a kernel with vfat and loop partition scanning.
func BuildVM(ctx context.Context, a *Appliance, opts BuildOptions) (*BuildResult, error) {
	if !a.HasVM() {
		return nil, fmt.Errorf("build %s --vm: %s does not declare the vm type (appliance.yaml types: [container, vm])", a.Name, a.Name)
	}
	kernel, ok := vmKernel[opts.Arch]
	loader, ok2 := vmdisk.BootLoader(opts.Arch)
	if !ok || !ok2 {
		return nil, fmt.Errorf("build %s --vm: no VM support for %s", a.Name, opts.Arch)
	}
	if err := opts.resolve(); err != nil {
		return nil, err
	}
	va, tmpl, err := variantBuild(a, opts.Variant)
	if err != nil {
		return nil, err
	}
	if tmpl, err = overlayTemplate(tmpl, fmt.Sprintf(vmOverlay, kernel)); err != nil {
		return nil, fmt.Errorf("build %s --vm: %w", a.Name, err)
	}
	dir, meta, _ := Paths(opts.OutDir, va.Name, opts.Arch)
	res := &BuildResult{Dir: dir, Metadata: meta, Disk: filepath.Join(dir, DiskName), Log: filepath.Join(dir, "build-vm.log")}
	if _, err := os.Stat(meta); err != nil {
		return nil, fmt.Errorf("build %s --vm: no container build in %s: the disk is published beside it (run publish build %s first)", a.Name, dir, a.Name)
	}
	version, err := toolVersion(ctx, opts.Distrobuilder)
	if err != nil {
		return nil, err
	}
	// The VM template (merged base and overlay, the variant's additions,
	// the VM overlay) stands for the base.
	if res.Inputs, err = inputsHash(a.Dir, version, opts.Arch, "vm", string(tmpl)); err != nil {
		return nil, err
	}
	stamp := filepath.Join(dir, "vm.inputs")
	if old, err := os.ReadFile(stamp); err == nil && !opts.Force && string(old) == res.Inputs {
		if _, err := os.Stat(res.Disk); err == nil {
			res.Skipped = true
			return res, nil
		}
	}

	work, err := os.MkdirTemp(filepath.Dir(dir), ".vm-"+opts.Arch+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	rootfs, logPath := filepath.Join(work, "rootfs"), filepath.Join(work, "build.log")
	tmplPath := filepath.Join(work, MergedTemplateName)
	if err := os.WriteFile(tmplPath, tmpl, 0o644); err != nil {
		return nil, err
	}
	if err := runDistrobuilderDir(ctx, va, opts, work, rootfs, logPath, tmplPath); err != nil {
		kept := filepath.Join(filepath.Dir(dir), opts.Arch+".vm.failed.log")
		_ = os.Rename(logPath, kept)
		return nil, fmt.Errorf("build %s/%s --vm: %w (log: %s)", va.Name, opts.Arch, err, kept)
	}
	if opts.Progress != nil {
		opts.Progress("Assembling the disk (EFI system partition + ext4 root)")
	}
	esp := filepath.Join(work, "esp")
	partUUID := newUUID()
	if err := espTree(rootfs, esp, loader, partUUID); err != nil {
		return nil, fmt.Errorf("build %s/%s --vm: %w", va.Name, opts.Arch, err)
	}
	disk := filepath.Join(work, DiskName)
	if err := vmdisk.Assemble(ctx, vmdisk.DiskOptions{ESPDir: esp, RootDir: rootfs, RootPartUUID: partUUID, Out: disk, Compress: opts.Compression == "xz"}); err != nil {
		return nil, fmt.Errorf("build %s/%s --vm: %w", va.Name, opts.Arch, err)
	}
	if err := vmdisk.CheckBootable(disk, opts.Arch); err != nil {
		return nil, fmt.Errorf("build %s/%s --vm: %w", va.Name, opts.Arch, err)
	}
	if err := os.Rename(disk, res.Disk); err != nil {
		return nil, err
	}
	_ = os.Rename(logPath, res.Log)
	return res, os.WriteFile(stamp, []byte(res.Inputs), 0o644)
}

// runDistrobuilderDir runs distrobuilder build-dir with the template at
// tmplPath.
func runDistrobuilderDir(ctx context.Context, a *Appliance, opts BuildOptions, work, rootfs, logPath, tmplPath string) error {
	karch, _ := osarch.Kernel(opts.Arch)
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	return runDistrobuilderArgs(ctx, a, opts, work, logPath, tmplPath, epoch, func(cache string) []string {
		return []string{
			"--cache-dir", filepath.Join(cache, "work", strings.ReplaceAll(a.Name, "/", "-")+"-vm-"+opts.Arch),
			"build-dir", tmplPath, rootfs, "--with-post-files",
			"--sources-dir", filepath.Join(cache, "sources"),
			"-o", "image.architecture=" + karch,
		}
	})
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

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
