package catalog

import (
	"fmt"
	"strings"
)

// The registry's paths. Every file a registry writes lives at one of the
// paths below, relative to the root of its store (a directory, a bucket
// or a prefix in one); this file is the one place that spells them.
//
//	streams/v1/index.json              the entry point every client reads first
//	                                   (IndexPath): one entry per product file
//	streams/v1/images.json             the catalog (ImagesPath); in a registry of
//	                                   several catalog files, their root (layout.go)
//	streams/v1/images-K.json           product file K = 1..N of a registry of N
//	                                   files (ShardPathPattern matches them all)
//	streams/v1/index.sjson             in a signed registry, index.json clear-signed
//	                                   with each entry's path naming the .sjson of its
//	                                   product file (SignedIndexPath, Index.Signed)
//	streams/v1/images.sjson,           each product file clear-signed, byte for byte
//	streams/v1/images-K.sjson          (SignedPath); the format, the stamp each signed
//	                                   document carries (updated, registry_serial,
//	                                   registry_expires) and index.json's
//	                                   registry_sha256 are in stamp.go
//	images/<fp>/                       the files of the image whose fingerprint is
//	                                   <fp> (ImagesDir, ImagePaths):
//	    incus.tar.xz                     its metadata tarball (listed twice: as
//	                                     incus.tar.xz and lxd.tar.xz)
//	    rootfs.squashfs                  its root: a squashfs,
//	    rootfs.tar.xz                    a tarball,
//	    disk.qcow2                       or a VM disk (a VM disk published beside a
//	                                     container root is the root of its own
//	                                     fingerprint: VMDisk.Path)
//	    delta-<base>-<sha256>.vcdiff     a delta from the image whose fingerprint is
//	                                     <base>, named by its own digest (DeltaPath)
//	    sbom.spdx.json                   its SPDX SBOM (SBOMPath)
//	    provenance-<sha256>.intoto.json  its build provenance, an in-toto Statement,
//	                                     named by its own digest: two builds of one
//	                                     image (another run, another gate report) make
//	                                     different statements (ProvenancePath)
//	    profiles/<name>.yaml             the Incus profiles shipped with it
//	                                     (ProfilePath)
//	registry-probe/<id>                a probe object written and deleted before a
//	                                   registry is created (ProbeDir)
//
// The catalog files change with conditional writes; everything under
// images/ is content-addressed (by the image's fingerprint and, for a
// delta, by its own digest), written once "only if absent" and never
// overwritten. A registry serves and prunes files under images/ only:
// items another tool lists elsewhere are refused (VersionCopy.Check).
const (
	IndexPath  = "streams/v1/index.json"
	ImagesPath = "streams/v1/images.json"
	// ShardPathPattern matches every product file of a registry of several
	// catalog files (a CloudFront invalidation wildcard).
	ShardPathPattern = "streams/v1/images-*"
	// ImagesDir is the folder of every image file.
	ImagesDir = "images/"
	// ProbeDir is where the conditional-write probe writes.
	ProbeDir = "registry-probe/"
)

// SignedIndexPath is where index.json's signed form is stored.
const SignedIndexPath = streamsDir + "index.sjson"

// SignedPath is where the signed form of catalog document path (index.json
// or a product file) is stored: X.sjson beside X.json.
func SignedPath(path string) string {
	return strings.TrimSuffix(path, ".json") + ".sjson"
}

// streamsDir is the folder of the catalog files.
const streamsDir = "streams/v1/"

// productFilePath is the path of product file k (1-based) of a registry of
// several catalog files.
func productFilePath(k int) string {
	return fmt.Sprintf("%simages-%d.json", streamsDir, k)
}

// contentIDOf is the content_id of catalog file path and the key of its
// entry in index.json: "images" for images.json, "images-K" for product
// file K.
func contentIDOf(path string) string {
	return strings.TrimSuffix(strings.TrimPrefix(path, streamsDir), ".json")
}

// rootFiles are the file names of an image's root by kind.
var rootFiles = map[RootKind]string{
	RootSquashfs: "rootfs.squashfs",
	RootTarXZ:    "rootfs.tar.xz",
	RootQCOW2:    "disk.qcow2",
}

// imageDir is the folder of the files of image fingerprint.
func imageDir(fingerprint string) string { return ImagesDir + fingerprint + "/" }

// ImagePaths returns the content-addressed paths of an image's metadata
// tarball and root file.
func ImagePaths(fingerprint string, kind RootKind) (meta, root string) {
	dir := imageDir(fingerprint)
	return dir + "incus.tar.xz", dir + rootFiles[kind]
}

// Path is where the disk is stored (content-addressed by its own
// fingerprint).
func (d *VMDisk) Path() string {
	_, p := ImagePaths(d.Fingerprint, RootQCOW2)
	return p
}

// DeltaPath is where the delta from base to image fingerprint is stored.
// It is content-addressed by the delta's own SHA-256, not only by the pair
// of fingerprints: two publishers (or two xdelta3 versions) can encode
// different, equally valid deltas for the same pair, and neither may ever
// overwrite the other's file. The catalog lists one of them; the other is
// an orphan that prune deletes after the grace period.
func DeltaPath(fingerprint, baseFingerprint, deltaSHA256 string) string {
	return imageDir(fingerprint) + "delta-" + baseFingerprint + "-" + deltaSHA256 + ".vcdiff"
}

// SBOMPath is where the SBOM of an image is stored.
func SBOMPath(fingerprint string) string {
	return imageDir(fingerprint) + FTypeSBOM
}

// ProvenancePath is where a provenance statement of image fingerprint is
// stored, content-addressed by its own SHA-256 (like a delta).
func ProvenancePath(fingerprint, sha256 string) string {
	return imageDir(fingerprint) + "provenance-" + sha256 + ".intoto.json"
}

// ProfilePath is where a profile shipped with an image is stored.
func ProfilePath(fingerprint, name string) string {
	return imageDir(fingerprint) + "profiles/" + name + ".yaml"
}

// isImageFile reports whether path is under images/, the only files a
// registry serves and prunes.
func isImageFile(path string) bool { return strings.HasPrefix(path, ImagesDir) }
