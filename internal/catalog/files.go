package catalog

import (
	"maps"
	"slices"
)

// FileRole says which of an image's files a file is.
type FileRole string

// The files an image publishes.
const (
	RoleMetadata FileRole = "metadata" // the metadata tarball
	RoleRoot     FileRole = "root"     // the root: squashfs, tarball or VM disk
	RoleVMDisk   FileRole = "vm-disk"  // a VM disk beside a container root (vm.go)
	RoleProfile  FileRole = "profile"  // an Incus profile shipped with it
	RoleSBOM     FileRole = "sbom"     // its SPDX SBOM
	// RoleProvenance is its build provenance (an in-toto Statement of
	// the files before it).
	RoleProvenance FileRole = "provenance"
	RoleDelta      FileRole = "delta" // a delta from an older version's root (delta.go); several per image
)

// ImageFile is one file of an image: what it is, where it is stored
// (paths.go) and its digest and size.
type ImageFile struct {
	Role FileRole
	// Name is the profile's name (RoleProfile).
	Name string
	Path string
	FileRef
	// itemKey and item are how the version lists it.
	itemKey string
	item    Item
}

// Files lists every file of the image, in the order a publish uploads
// them after the root: the metadata, the root, the VM disk, the profiles
// by name, the SBOM, the provenance, then the deltas (to the root, then to
// the VM disk). It is the one list of what a version of the image stores:
// its paths (Paths), its items (Add) and the uploads of a publish come
// from it.
func (img Image) Files() []ImageFile {
	meta, root := ImagePaths(img.Fingerprint, img.RootKind)
	rk := rootKinds[img.RootKind]
	out := []ImageFile{
		{Role: RoleMetadata, Path: meta, FileRef: img.Metadata, itemKey: FTypeIncusMeta, item: Item{FType: FTypeIncusMeta}},
		{Role: RoleRoot, Path: root, FileRef: img.Root, itemKey: rk.itemKey, item: Item{FType: rk.ftype}},
	}
	if img.VM != nil {
		out = append(out, img.VM.file())
	}
	for _, name := range slices.Sorted(maps.Keys(img.Profiles)) {
		out = append(out, ImageFile{Role: RoleProfile, Name: name, Path: ProfilePath(img.Fingerprint, name), FileRef: img.Profiles[name],
			itemKey: "profile:" + name, item: Item{FType: FTypeProfile}})
	}
	if img.SBOM != nil {
		out = append(out, ImageFile{Role: RoleSBOM, Path: SBOMPath(img.Fingerprint), FileRef: *img.SBOM, itemKey: "sbom", item: Item{FType: FTypeSBOM}})
	}
	if pv := img.Provenance; pv != nil {
		out = append(out, ImageFile{Role: RoleProvenance, Path: ProvenancePath(img.Fingerprint, pv.SHA256), FileRef: *pv, itemKey: "provenance", item: Item{FType: FTypeProvenance}})
	}
	out = append(out, deltaFiles(img.Fingerprint, img.RootKind, img.Deltas)...)
	if img.VM != nil {
		out = append(out, deltaFiles(img.VM.Fingerprint, RootQCOW2, img.VM.Deltas)...)
	}
	for i, f := range out {
		out[i].item.Path, out[i].item.SHA256, out[i].item.Size = f.Path, f.SHA256, f.Size
	}
	return out
}

// deltaFiles are the files of deltas to the root of kind of image
// fingerprint.
func deltaFiles(fingerprint string, kind RootKind, deltas []Delta) []ImageFile {
	var out []ImageFile
	for _, d := range deltas {
		out = append(out, ImageFile{Role: RoleDelta, Path: DeltaPath(fingerprint, d.BaseFingerprint, d.File.SHA256), FileRef: d.File,
			itemKey: deltaItemKey(d.Base), item: Item{FType: deltaFTypes[kind], DeltaBase: d.Base}})
	}
	return out
}

// Paths returns the paths of all the image's files, in Files' order.
func (img Image) Paths() []string {
	var out []string
	for _, f := range img.Files() {
		out = append(out, f.Path)
	}
	return out
}

// version builds the catalog version for the image: an item per file,
// the metadata listed twice (as the Incus and the LXD metadata), both
// carrying the image's fingerprints.
func (img Image) version() *Version {
	v := &Version{Label: img.Description, Items: map[string]Item{}, Appliance: img.applianceBuild()}
	for _, f := range img.Files() {
		v.Items[f.itemKey] = f.item
	}
	lxd := v.Items[FTypeIncusMeta]
	lxd.FType = FTypeLXDMeta
	v.Items[FTypeLXDMeta] = lxd
	img.combine(v)
	return v
}

// combine writes the image's fingerprints into the metadata items of v
// (found by ftype: a version another tool wrote may use other keys): the
// root's in the combined field of its kind, the VM disk's in the disk's.
func (img Image) combine(v *Version) {
	for k, it := range v.Items {
		if it.FType != FTypeIncusMeta && it.FType != FTypeLXDMeta {
			continue
		}
		switch img.RootKind {
		case RootSquashfs:
			it.CombinedSquashfsSHA256 = img.Fingerprint
		case RootTarXZ:
			it.CombinedRootXZSHA256 = img.Fingerprint
		case RootQCOW2:
			it.CombinedDiskKVMImgSHA256 = img.Fingerprint
		}
		if img.VM != nil {
			it.CombinedDiskKVMImgSHA256 = img.VM.Fingerprint
		}
		v.Items[k] = it
	}
}
