package catalog

import (
	"fmt"

	"github.com/incus-appliance/registry/internal/digest"
)

// VMDisk is a virtual-machine disk (qcow2) published beside an image's
// container root in the same version, as images.linuxcontainers.org does:
// one metadata tarball, two roots, two fingerprints. `incus launch` picks
// the squashfs, `incus launch --vm` the disk.
type VMDisk struct {
	// Fingerprint is sha256(metadata bytes followed by the disk's bytes).
	Fingerprint string
	Disk        FileRef
	// Deltas are deltas from the VM images of older versions of the
	// product to this disk (DeltaBases with RootQCOW2: their Base is the
	// older version's anchor, anchor.go), newest base first.
	Deltas []Delta
}

// fingerprints are every image fingerprint the image publishes.
func (img Image) fingerprints() []string {
	if img.VM == nil {
		return []string{img.Fingerprint}
	}
	return []string{img.Fingerprint, img.VM.Fingerprint}
}

func (img Image) validateVM() error {
	if img.VM == nil {
		return nil
	}
	if img.RootKind == RootQCOW2 {
		return fmt.Errorf("image %s: the root is already a VM disk; publish a second disk on its own", img.Name)
	}
	if !digest.IsSHA256(img.VM.Fingerprint) || !digest.IsSHA256(img.VM.Disk.SHA256) || img.VM.Disk.Size <= 0 {
		return fmt.Errorf("image %s: VM disk: fingerprint and digest must be 64 lowercase hex digits, size > 0", img.Name)
	}
	if img.VM.Fingerprint == img.Fingerprint {
		return fmt.Errorf("image %s: the VM disk has the container image's fingerprint", img.Name)
	}
	return nil
}

// file is the disk as a file of its image.
func (d *VMDisk) file() ImageFile {
	rk := rootKinds[RootQCOW2]
	return ImageFile{Role: RoleVMDisk, Path: d.Path(), FileRef: d.Disk, itemKey: rk.itemKey, item: Item{FType: rk.ftype, Path: d.Path(), SHA256: d.Disk.SHA256, Size: d.Disk.Size}}
}

// addVM puts the VM disk item into v, a version already published
// without it, and its fingerprint on the metadata items.
func (img Image) addVM(v *Version) {
	f := img.VM.file()
	v.Items[f.itemKey] = f.item
	img.combine(v)
}

// addsVMTo reports whether old is exactly this image's version without
// its VM disk: publishing the disk later adds it to the version (the
// container image, its files and fingerprint, stay as they are).
func (img Image) addsVMTo(old *Version) bool {
	if img.VM == nil {
		return false
	}
	noVM := img
	noVM.VM = nil
	return sameImage(old, noVM.version())
}
