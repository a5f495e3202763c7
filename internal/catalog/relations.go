package catalog

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/incus-appliance/registry/internal/osarch"
	"github.com/incus-appliance/registry/internal/relations"
)

// ApplianceBuild is what a version records of the appliance build it
// is: the appliance's version and its relations (relations.Provides and
// relations.Requires strings), so that the relation rules
// (internal/relations) know every published version, not only the
// newest, which the product's Version and Custom describe.
type ApplianceBuild struct {
	Version  string `json:"version"`
	Provides string `json:"provides,omitempty"`
	Requires string `json:"requires,omitempty"`
}

// applianceBuild is what img's version records: nothing for an image
// not published from an appliance (no ApplianceVersion).
func (img Image) applianceBuild() ApplianceBuild {
	if img.ApplianceVersion == "" {
		return ApplianceBuild{}
	}
	return ApplianceBuild{Version: img.ApplianceVersion, Provides: img.Custom[relations.Provides], Requires: img.Custom[relations.Requires]}
}

// ApplianceBuild is what version vk of p records of its appliance
// build; a version without a record (published before versions had one)
// is described by the product: its Version when it is the newest, its
// relations either way.
func (p *Product) ApplianceBuild(vk string) ApplianceBuild {
	return p.applianceBuild(vk, vk == slices.Max(p.VersionKeys()))
}

func (p *Product) applianceBuild(vk string, newest bool) ApplianceBuild {
	if b := p.Versions[vk].Appliance; b.Version != "" {
		return b
	}
	b := ApplianceBuild{Provides: p.Custom[relations.Provides], Requires: p.Custom[relations.Requires]}
	if newest {
		b.Version = p.Version
	}
	return b
}

// ApplianceImages lists every version of the catalog's products that
// takes part in relations as the relation rules see it, by product then
// version key. A version whose relations do not parse (another tool
// wrote them) is left out and named in problems.
func (c *Catalog) ApplianceImages() (images []relations.Image, problems []string) {
	for _, pk := range c.ProductKeys() {
		p := c.Products[pk]
		main, _, _ := strings.Cut(pk, ":")
		name, variant, _ := strings.Cut(main, "/")
		vks := p.VersionKeys()
		for i, vk := range vks {
			newest := i == len(vks)-1
			b := p.applianceBuild(vk, newest)
			if b.Provides == "" && b.Requires == "" {
				continue
			}
			im := relations.Image{Appliance: name, Variant: variant, Arch: osarch.Canonical(p.Arch), Version: b.Version,
				Launchable: newest && p.Aliases != "", Product: pk, Key: vk}
			for _, vi := range p.Versions[vk].Images() {
				im.Fingerprint = vi.Fingerprint
				break
			}
			var errP, errR error
			im.Provides, errP = relations.ParseProvides(b.Provides)
			im.Requires, errR = relations.ParseRequires(b.Requires)
			if err := cmp.Or(errP, errR); err != nil {
				problems = append(problems, fmt.Sprintf("%s version %s: %v", pk, vk, err))
				continue
			}
			images = append(images, im)
		}
	}
	return images, problems
}
