// Package image inspects Incus split images before they are published.
//
// A split image is a metadata tarball (incus.tar.xz: an xz-compressed tar
// holding metadata.yaml and optionally templates/) plus a root, which is
// either a squashfs (rootfs.squashfs), a qcow2 VM disk (disk.qcow2) or an
// xz-compressed tarball (rootfs.tar.xz). [Inspect] validates both files the
// way the reference tool incus-simplestreams would, reading each exactly
// once, and computes the sizes, SHA-256 sums and the image fingerprint
// Incus uses: sha256(metadata bytes followed by root bytes).
//
// A [Record] keeps what an Inspect found beside the files (a build writes
// one); [Resume] then describes the image from it without reading the root,
// whose upload (through [Stream]) is checked by the store against the
// recorded digests.
//
// [WriteMetadataTarball] builds a metadata tarball; the imagetest
// subpackage builds whole fake images for tests.
package image
