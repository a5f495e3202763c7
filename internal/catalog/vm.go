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

// addVM puts the VM disk item into v and its fingerprint on the metadata
// items.
func (img Image) addVM(v *Version) {
	if img.VM == nil {
		return
	}
	for k, it := range v.Items { // by ftype: a version another tool wrote may use other keys
		if it.FType == FTypeIncusMeta || it.FType == FTypeLXDMeta {
			it.CombinedDiskKVMImgSHA256 = img.VM.Fingerprint
			v.Items[k] = it
		}
	}
	rk := rootKinds[RootQCOW2]
	v.Items[rk.itemKey] = Item{FType: rk.ftype, Path: img.VM.Path(), SHA256: img.VM.Disk.SHA256, Size: img.VM.Disk.Size}
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
	return sameVersion(old.withoutDeltas(), noVM.version().withoutDeltas())
}
