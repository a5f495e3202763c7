package catalog

import (
	"fmt"
	"slices"

	"github.com/incus-appliance/registry/internal/osarch"
)

// Problems lists what would make clients hide or mis-resolve images, or
// this tool misreport them: a product key breaking the key rule, an
// architecture Incus does not know, a bad aliases string or an alias
// claimed by two products on one architecture, a version key Incus skips,
// a version without a complete image (a metadata item whose combined hash
// matches a root item; a version shell with no root at all is only a
// warning), a fingerprint published twice, and a delta whose delta_base is
// not an older squashfs version of the product. An empty result means Incus
// clients see every image; Warnings lists the softer issues.
func (c *Catalog) Problems() []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	owners := map[string]string{} // arch + "\x00" + alias → product
	fingerprints := map[string]string{}
	for _, pk := range c.ProductKeys() {
		p := c.Products[pk]
		if err := ValidateProductKey(pk); err != nil {
			add("%v: another tool or an older mirror wrote it; remove its images (publish remove FINGERPRINT)", err)
		}
		if _, err := osarch.Normalize(p.Arch); err != nil {
			add("product %s: %v: Incus hides the whole product", pk, err)
		}
		aliases := p.AliasList()
		for _, a := range aliases {
			if err := ValidateAlias(a); err != nil {
				add("product %s: %v", pk, err)
				continue
			}
			k := osarch.Canonical(p.Arch) + "\x00" + a
			if other, ok := owners[k]; ok {
				add("alias %q on %s is listed by both %s and %s: Incus resolves it to one of them only", a, p.Arch, other, pk)
			}
			owners[k] = pk
		}
		if len(slices.Compact(slices.Sorted(slices.Values(aliases)))) != len(aliases) {
			add("product %s: duplicate alias in %q", pk, p.Aliases)
		}
		if len(p.Versions) == 0 {
			add("product %s has no versions", pk)
		}
		out = append(out, p.anchorProblems(pk)...)
		for _, vk := range p.VersionKeys() {
			v := p.Versions[vk]
			if err := checkVersionKey(vk); err != nil {
				add("product %s: %v", pk, err)
			}
			out = append(out, p.deltaProblems(pk, vk, c.State == nil)...)
			images := v.Images()
			if len(images) == 0 && !v.IsShell() {
				add("product %s version %s: no metadata item whose combined hash names a root item: Incus hides it", pk, vk)
			}
			for _, vi := range images {
				where := pk + " version " + vk
				if other, ok := fingerprints[vi.Fingerprint]; ok {
					add("image %s is published twice: %s and %s", vi.Fingerprint, other, where)
				}
				fingerprints[vi.Fingerprint] = where
			}
		}
	}
	return out
}

func (v *Version) hasLXDMeta(vi VersionImage) bool {
	for _, it := range v.Items {
		if it.FType == FTypeLXDMeta && it.combinedFor(vi.Root.FType) == vi.Fingerprint {
			return true
		}
	}
	return false
}
