package appliance

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/vmdisk"
)

// DiskName is the VM disk a VM build leaves beside incus.tar.xz and
// rootfs.squashfs.
const DiskName = "disk.qcow2"

// builtDisk returns the VM disk of a finished build, or "".
func builtDisk(outDir, name, arch string) string {
	dir, _, _ := Paths(outDir, name, arch)
	p := filepath.Join(dir, DiskName)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// addVMDisk inspects the VM disk with the request's metadata tarball,
// checks it boots under UEFI, and adds it to the request.
func addVMDisk(ctx context.Context, req *registry.PublishRequest, disk string, progress func(string, int64, int64)) error {
	im, err := image.Inspect(ctx, req.MetadataPath, disk, image.Options{Arch: req.Image.Arch, PartSize: registry.UploadPartSize, Progress: progress})
	if err != nil {
		return err
	}
	if im.RootKind != catalog.RootQCOW2 {
		return fmt.Errorf("VM disk %s is a %s, not a qcow2 disk", disk, im.RootKind)
	}
	if err := vmdisk.CheckBootable(disk, im.Metadata.Arch); err != nil {
		return err
	}
	req.Image.VM = &catalog.VMDisk{Fingerprint: im.Fingerprint, Disk: catalog.FileRef{SHA256: im.Root.SHA256, Size: im.Root.Size}}
	req.VMDiskPath, req.VMDiskPartSHA256 = disk, im.Root.PartSHA256
	return nil
}

// vmRequirements adds what the appliance's VM disk needs: its boot loader
// is not signed for Secure Boot, which Incus enables by default.
func vmRequirements(r map[string]string) map[string]string {
	out := maps.Clone(r)
	if out == nil {
		out = map[string]string{}
	}
	if _, ok := out["secureboot"]; !ok {
		out["secureboot"] = "false"
	}
	return out
}
