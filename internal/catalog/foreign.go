package catalog

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// FTypeCombined is a unified image (metadata and root in one tarball).
const FTypeCombined = "incus_combined.tar.gz"

// Warnings lists what is imperfect but harmless to Incus clients: a
// version with no lxd.tar.xz item carrying its fingerprint (LXD clients do
// not see it; trees written by incus-simplestreams have none), a version
// shell left by another tool's remove (metadata items without any root: no
// client sees it; prune drops it), and, in a catalog another tool wrote
// last (no registry_state), a delta whose base it removed (Incus ignores
// it; prune drops it; in our own catalog that is a problem). `verify --strict` treats them
// as problems.
func (c *Catalog) Warnings() []string {
	var out []string
	for _, pk := range c.ProductKeys() {
		p := c.Products[pk]
		for _, vk := range p.VersionKeys() {
			v := p.Versions[vk]
			for _, k := range slices.Sorted(maps.Keys(v.Deltas())) {
				if it := v.Items[k]; c.State == nil && p.danglingDelta(it) {
					out = append(out, fmt.Sprintf("product %s version %s item %s: its delta_base %s is gone or has no root (another tool removed it): Incus ignores the delta; the next prune drops it", pk, vk, k, it.DeltaBase))
				}
			}
			if v.IsShell() {
				out = append(out, fmt.Sprintf("product %s version %s has metadata but no root item (another tool's remove, e.g. incus-simplestreams remove, left it): no client sees it; the next prune drops it", pk, vk))
				continue
			}
			for _, vi := range v.Images() {
				if !v.hasLXDMeta(vi) {
					out = append(out, fmt.Sprintf("product %s version %s: no %s item carrying fingerprint %s: LXD clients will not see it", pk, vk, FTypeLXDMeta, vi.Fingerprint))
				}
			}
		}
	}
	return out
}

// IsShell reports whether the version has no root item and no unified
// image: what `incus-simplestreams remove` leaves of a version that has
// more items than the one metadata item it expects.
func (v *Version) IsShell() bool {
	for _, it := range v.Items {
		if _, ok := kindOfFType(it.FType); ok || it.FType == FTypeCombined {
			return false
		}
	}
	return true
}

// DropShells removes the version shells (see IsShell) and retires the
// files only they referenced, at now.
func (c *Catalog) DropShells(now time.Time) []Removed {
	var out []Removed
	for _, pk := range c.ProductKeys() {
		for _, vk := range c.Products[pk].VersionKeys() {
			if c.Products[pk].Versions[vk].IsShell() {
				out = append(out, Removed{Product: pk, Version: vk, Fingerprints: []string{}})
				c.dropVersion(pk, vk, now)
			}
		}
	}
	return out
}

// danglingDelta reports whether a delta item's base version is missing or
// a shell: what another tool's remove of the base leaves (ours drops the
// deltas with their base).
func (p *Product) danglingDelta(it Item) bool {
	if !isDeltaFType(it.FType) || it.DeltaBase == "" {
		return false
	}
	base := p.Versions[it.DeltaBase]
	return base == nil || base.IsShell() && !p.isAnchor(it.DeltaBase)
}

// DropDanglingDeltas removes the delta items whose base is gone (see
// danglingDelta), retiring their files at now, and returns their paths.
func (c *Catalog) DropDanglingDeltas(now time.Time) []string {
	var gone []string
	for _, pk := range c.ProductKeys() {
		p := c.Products[pk]
		for _, v := range p.Versions {
			for k, it := range v.Items {
				if p.danglingDelta(it) {
					delete(v.Items, k)
					gone = append(gone, it.Path)
				}
			}
		}
	}
	refs := c.Referenced()
	for _, path := range gone {
		if !refs[path] {
			c.retire(path, now)
		}
	}
	slices.Sort(gone)
	return gone
}
