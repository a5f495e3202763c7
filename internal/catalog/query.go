package catalog

import (
	"maps"
	"slices"
	"strings"

	"github.com/incus-appliance/registry/internal/relations"
)

// VersionImage is one image of a version, as Incus sees it: a metadata item
// paired with a root item, identified by the combined fingerprint.
type VersionImage struct {
	Fingerprint string
	// MetaKey and RootKey are the item keys inside the version.
	MetaKey, RootKey string
	Meta, Root       Item
	Kind             RootKind
}

// combinedFor returns the metadata item's combined hash for a root ftype.
func (it Item) combinedFor(rootFType string) string {
	switch rootFType {
	case FTypeSquashfs:
		return it.CombinedSquashfsSHA256
	case FTypeRootTarXZ:
		if it.CombinedRootXZSHA256 != "" {
			return it.CombinedRootXZSHA256
		}
		return it.CombinedSHA256
	case FTypeDiskKVMImg:
		return it.CombinedDiskKVMImgSHA256
	}
	return ""
}

// Images lists the version's images the way Incus pairs items: each
// incus.tar.xz item with each root item, in item-key order. A pair whose
// combined hash is missing is skipped, as Incus skips it.
func (v *Version) Images() []VersionImage {
	var out []VersionImage
	keys := slices.Sorted(maps.Keys(v.Items))
	for _, mk := range keys {
		meta := v.Items[mk]
		if meta.FType != FTypeIncusMeta {
			continue
		}
		for _, rk := range keys {
			root := v.Items[rk]
			kind, ok := kindOfFType(root.FType)
			if !ok {
				continue
			}
			if fp := meta.combinedFor(root.FType); fp != "" {
				out = append(out, VersionImage{Fingerprint: fp, MetaKey: mk, RootKey: rk, Meta: meta, Root: root, Kind: kind})
			}
		}
	}
	return out
}

func kindOfFType(ftype string) (RootKind, bool) {
	for k, rk := range rootKinds {
		if rk.ftype == ftype {
			return k, true
		}
	}
	return "", false
}

// describe names a version's content for error messages.
func (v *Version) describe() string {
	var fps []string
	for _, vi := range v.Images() {
		fps = append(fps, "fingerprint "+vi.Fingerprint)
	}
	if len(fps) == 0 {
		return "no complete image"
	}
	return strings.Join(fps, ", ")
}

// ProductKeys returns the product keys, sorted.
func (c *Catalog) ProductKeys() []string {
	return slices.Sorted(maps.Keys(c.Products))
}

// VersionKeys returns the product's version keys, oldest first; its VM
// delta anchors (anchor.go) are not versions.
func (p *Product) VersionKeys() []string {
	keys := slices.Sorted(maps.Keys(p.Versions))
	return slices.DeleteFunc(keys, p.isAnchor)
}

// Referenced returns every file path any item of the catalog points at.
func (c *Catalog) Referenced() map[string]bool {
	refs := map[string]bool{}
	for _, p := range c.Products {
		for _, v := range p.Versions {
			for _, it := range v.Items {
				refs[it.Path] = true
			}
		}
	}
	return refs
}

// Entry is one image as `publish list` shows it.
type Entry struct {
	Product string   `json:"product"`
	Aliases []string `json:"aliases"`
	Arch    string   `json:"arch"`
	OS      string   `json:"os"`
	Release string   `json:"release"`
	Variant string   `json:"variant,omitempty"`
	// ApplianceVersion is the appliance's own version, when published from
	// an appliance folder.
	ApplianceVersion string   `json:"appliance_version,omitempty"`
	Version          string   `json:"version"`
	Latest           bool     `json:"latest"`
	Fingerprint      string   `json:"fingerprint"`
	Kind             RootKind `json:"kind"`
	// Type is what Incus makes of it: "container" or "virtual-machine".
	Type        string `json:"type"`
	Size        int64  `json:"size"`
	Description string `json:"description,omitempty"`
	// Requirements and Custom are the product's (appliance metadata:
	// ports, volumes, service, tags, ...).
	Requirements map[string]string `json:"requirements,omitempty"`
	Custom       map[string]string `json:"custom,omitempty"`
	// SBOM and Provenance are the paths of the version's SBOM and build
	// provenance, when it has them.
	SBOM       string `json:"sbom,omitempty"`
	Provenance string `json:"provenance,omitempty"`
	// Provides and Requires are the appliance's relations, as the
	// version records them (relations.go).
	Provides []relations.Provide `json:"provides,omitempty"`
	Requires []relations.Require `json:"requires,omitempty"`
}

// Entries lists every image, by product then newest version first. Only
// the latest version of a product carries its aliases, as in Incus.
func (c *Catalog) Entries() []Entry {
	var out []Entry
	for _, pk := range c.ProductKeys() {
		p := c.Products[pk]
		vks := p.VersionKeys()
		for i := len(vks) - 1; i >= 0; i-- {
			b := p.applianceBuild(vks[i], i == len(vks)-1)
			for _, vi := range p.Versions[vks[i]].Images() {
				e := Entry{
					Product: pk, Arch: p.Arch, OS: p.OS, Release: p.Release, Variant: p.Variant, ApplianceVersion: b.Version,
					Version: vks[i], Latest: i == len(vks)-1, Fingerprint: vi.Fingerprint,
					Kind: vi.Kind, Type: vi.Kind.InstanceType(), Size: vi.Meta.Size + vi.Root.Size, Description: p.Versions[vks[i]].Label,
				}
				if e.Latest {
					e.Aliases = p.AliasList()
				}
				e.Requirements, e.Custom = p.Requirements, p.Custom
				e.Provides, _ = relations.ParseProvides(b.Provides)
				e.Requires, _ = relations.ParseRequires(b.Requires)
				for _, it := range p.Versions[vks[i]].Items {
					switch it.FType {
					case FTypeSBOM:
						e.SBOM = it.Path
					case FTypeProvenance:
						e.Provenance = it.Path
					}
				}
				out = append(out, e)
			}
		}
	}
	return out
}

// InstanceType is the Incus instance type an image with this root runs
// as: "virtual-machine" for a VM disk, "container" otherwise.
func (k RootKind) InstanceType() string {
	if k == RootQCOW2 {
		return "virtual-machine"
	}
	return "container"
}
