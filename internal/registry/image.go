package registry

import (
	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/image"
)

// CatalogImage describes an inspected image for the catalog, published as
// appliance name with extra aliases and requirements.
func CatalogImage(name string, aliases []string, requirements map[string]string, im *image.Image) catalog.Image {
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
