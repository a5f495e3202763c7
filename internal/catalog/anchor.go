package catalog

import "strings"

// VM delta anchors. Incus resolves a delta's delta_base to the
// fingerprint in the combined_squashfs_sha256 field of that version's
// incus.tar.xz item, whatever the delta's root: for a disk-kvm.img.vcdiff
// too. In a version holding a container root and a VM disk that field
// names the container image, so a delta_base naming such a version would
// send the VM image's delta to hosts holding the container image. Each
// version with a VM image therefore gets an anchor, version K+"-vm": its
// metadata items only (the same file as the version's), naming the VM
// image in combined_squashfs_sha256. Incus lists no image from it (it has
// no root item); VM deltas name it as delta_base, so a host holding the
// VM image of version K finds its delta. An anchor comes and goes with
// its version (Add, dropVersion) and is not a version of the product:
// VersionKeys leaves it out.

// anchorSuffix ends an anchor's version key.
const anchorSuffix = "-vm"

// anchorKey is the key of the anchor of version vk.
func anchorKey(vk string) string { return vk + anchorSuffix }

// anchorOwner returns the version an anchor key belongs to.
func anchorOwner(k string) (string, bool) { return strings.CutSuffix(k, anchorSuffix) }

// VersionOf is the version a version key or delta_base stands for: an
// anchor's owner, or the key itself.
func (p *Product) VersionOf(key string) string {
	if p.isAnchor(key) {
		owner, _ := anchorOwner(key)
		return owner
	}
	return key
}

// isAnchor reports whether version k of the product is an anchor: a
// version with no root item whose key is an existing version's key
// followed by "-vm".
func (p *Product) isAnchor(k string) bool {
	owner, ok := anchorOwner(k)
	return ok && p.Versions[k] != nil && p.Versions[owner] != nil && p.Versions[k].IsShell()
}

// vmImage returns the fingerprint of the image's VM image (its VM disk,
// or its root when that is a disk), or "".
func (img Image) vmImage() string {
	switch {
	case img.VM != nil:
		return img.VM.Fingerprint
	case img.RootKind == RootQCOW2:
		return img.Fingerprint
	}
	return ""
}

// anchor returns the anchor of the image's version: its metadata items,
// naming its VM image as the delta source.
func (img Image) anchor() *Version {
	v := &Version{Label: "delta base of the VM image of version " + VersionKey(img.Created) + " (not an image)", Items: map[string]Item{}}
	meta := img.Files()[0].item
	meta.CombinedSquashfsSHA256, meta.CombinedDiskKVMImgSHA256 = img.vmImage(), img.vmImage()
	v.Items[FTypeIncusMeta] = meta
	meta.FType = FTypeLXDMeta
	v.Items[FTypeLXDMeta] = meta
	return v
}

// anchorProblems lists what is wrong with the product's anchors: one
// whose version has no VM image, or that names another image.
func (p *Product) anchorProblems(pk string) []string {
	var out []string
	for k := range p.Versions {
		if !p.isAnchor(k) {
			continue
		}
		owner, _ := anchorOwner(k)
		if _, ok := p.deltaBase(k, RootQCOW2); !ok || p.Versions[owner] == nil {
			out = append(out, "product "+pk+" version "+k+": a VM delta anchor that does not name the VM image of version "+owner)
		}
	}
	return out
}
