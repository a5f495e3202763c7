package image

import (
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
)

// File describes one file of an image as read from disk.
type File struct {
	Path   string // as passed to Inspect
	Size   int64  // bytes actually read
	SHA256 string // lowercase hex
	// PartSHA256 holds the SHA-256 (lowercase hex) of each consecutive
	// Options.PartSize-byte chunk of the root (the last may be shorter),
	// when Options.PartSize was set; nil otherwise and for the metadata.
	PartSHA256 []string
}

// Metadata is the validated content of metadata.yaml.
type Metadata struct {
	Architecture string    // top-level "architecture" as written
	Arch         string    // Architecture normalized by catalog.NormalizeArch
	CreationDate time.Time // UTC
	ExpiryDate   time.Time // UTC; zero if absent or 0
	OS           string    // properties.os
	Release      string    // properties.release
	Variant      string    // properties.variant
	Description  string    // properties.description
	Name         string    // properties.name; may be empty
	Serial       string    // properties.serial; may be empty
	// Properties holds every entry of "properties", values as strings
	// (YAML null becomes "").
	Properties map[string]string
}

// Image is the result of a successful Inspect.
type Image struct {
	Metadata     Metadata
	MetadataFile File
	Root         File
	RootKind     catalog.RootKind
	// Fingerprint is the lowercase hex sha256 of the metadata file's bytes
	// followed by the root file's bytes, as Incus computes it.
	Fingerprint string
}

// Options adjusts Inspect.
type Options struct {
	// Arch, if set, is the architecture the caller expects (any spelling
	// catalog.NormalizeArch accepts); metadata.yaml must agree with it.
	Arch string
	// Progress, if set, is called from Inspect's goroutine while a file
	// is read, at most about four times a second per file, and once more
	// at the end of each file with done == total. total is the file size
	// when known (regular files) and -1 otherwise, e.g. for a pipe.
	Progress func(path string, done, total int64)
	// PartSize, if > 0, makes Inspect also compute the SHA-256 of every
	// PartSize-byte chunk of the root (File.PartSHA256), in the same read:
	// the part checksums of a multipart upload, so that the store checks
	// each part against what was hashed here.
	PartSize int64
}

// CatalogImage describes the inspected image for the catalog, published as
// appliance name with extra aliases and requirements.
func (im *Image) CatalogImage(name string, aliases []string, requirements map[string]string) catalog.Image {
	md := im.Metadata
	return catalog.Image{
		Name: name, Arch: md.Arch, OS: md.OS, Release: md.Release, ReleaseTitle: md.Release,
		Variant: md.Variant, Description: md.Description, Created: md.CreationDate,
		Aliases: aliases, Requirements: requirements, Fingerprint: im.Fingerprint,
		Metadata: catalog.FileRef{SHA256: im.MetadataFile.SHA256, Size: im.MetadataFile.Size},
		Root:     catalog.FileRef{SHA256: im.Root.SHA256, Size: im.Root.Size},
		RootKind: im.RootKind,
	}
}
