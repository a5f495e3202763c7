package catalog

import (
	"fmt"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/osarch"

	"github.com/incus-appliance/registry/internal/digest"
)

// Removed names one version taken out of the catalog.
type Removed struct {
	Product      string   `json:"product"`
	Version      string   `json:"version"`
	Fingerprints []string `json:"fingerprints"`
}

// Resolve finds the versions a target names, the way Incus resolves it:
//   - a full fingerprint, or an exact alias ("nginx" or "nginx/amd64"), which
//     names the latest version of each product listing it (restricted to
//     arch when arch is non-empty);
//   - otherwise a unique fingerprint prefix of at least 8 hex digits.
func (c *Catalog) Resolve(target, arch string) ([]Removed, error) {
	if target == "" {
		return nil, fmt.Errorf("empty image name")
	}
	if arch != "" {
		a, err := osarch.Normalize(arch)
		if err != nil {
			return nil, err
		}
		arch = a
	}
	if digest.IsSHA256(target) {
		return c.byFingerprint(target, true)
	}
	var out []Removed
	for _, pk := range c.ProductKeys() {
		p := c.Products[pk]
		if arch != "" && osarch.Canonical(p.Arch) != arch {
			continue
		}
		base, medium := strings.CutSuffix(target, "/"+p.Arch)
		if !p.hasAlias(target) && !(medium && p.hasAlias(base)) || len(p.Versions) == 0 {
			continue
		}
		vks := p.VersionKeys()
		out = append(out, c.removedEntry(pk, vks[len(vks)-1]))
	}
	if len(out) > 0 {
		return out, nil
	}
	if len(target) >= 8 && digest.IsLowerHex(target) {
		return c.byFingerprint(target, false)
	}
	return nil, fmt.Errorf("no image or alias %q in the catalog (see `publish list`)", target)
}

func (c *Catalog) byFingerprint(fp string, exact bool) ([]Removed, error) {
	var out []Removed
	for _, pk := range c.ProductKeys() {
		for _, vk := range c.Products[pk].VersionKeys() {
			for _, vi := range c.Products[pk].Versions[vk].Images() {
				if vi.Fingerprint == fp || !exact && strings.HasPrefix(vi.Fingerprint, fp) {
					out = append(out, c.removedEntry(pk, vk))
				}
			}
		}
	}
	switch {
	case len(out) == 0:
		return nil, fmt.Errorf("no image with fingerprint %s in the catalog (see `publish list`)", fp)
	case len(out) > 1 && !exact:
		return nil, fmt.Errorf("fingerprint prefix %s matches %d images: give more digits", fp, len(out))
	}
	return out, nil
}

func (c *Catalog) removedEntry(pk, vk string) Removed {
	r := Removed{Product: pk, Version: vk}
	for _, vi := range c.Products[pk].Versions[vk].Images() {
		r.Fingerprints = append(r.Fingerprints, vi.Fingerprint)
	}
	return r
}

// Remove takes the versions that target names (see Resolve) out of the
// catalog. Files no longer referenced are marked retired at now; a product
// left without versions is deleted. On error the catalog is unchanged.
func (c *Catalog) Remove(target, arch string, now time.Time) ([]Removed, error) {
	rs, err := c.Resolve(target, arch)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		c.dropVersion(r.Product, r.Version, now)
	}
	return rs, nil
}

// KeepNewest removes all but the newest n versions of every product
// (n ≥ 1), retiring their files at now.
func (c *Catalog) KeepNewest(n int, now time.Time) ([]Removed, error) {
	if n < 1 {
		return nil, fmt.Errorf("keep must be at least 1, got %d", n)
	}
	var out []Removed
	for _, pk := range c.ProductKeys() {
		vks := c.Products[pk].VersionKeys()
		for len(vks) > n {
			out = append(out, c.removedEntry(pk, vks[0]))
			c.dropVersion(pk, vks[0], now)
			vks = vks[1:]
		}
	}
	return out, nil
}

// dropVersion deletes a version (and its product when it was the last),
// its VM delta anchor, the deltas whose base either was, and retires the
// files that nothing references any more.
func (c *Catalog) dropVersion(pk, vk string, now time.Time) {
	p := c.Products[pk]
	v := p.Versions[vk]
	gone := p.dropDeltasFrom(vk)
	if ak := anchorKey(vk); p.isAnchor(ak) {
		gone = append(gone, p.dropDeltasFrom(ak)...)
		delete(p.Versions, ak) // its items are the version's metadata
	}
	delete(p.Versions, vk)
	if len(p.Versions) == 0 {
		delete(c.Products, pk)
		if p.Line != "" {
			// The line's aliases move to the lines that remain (of the
			// same variant: the key is NAME[/VARIANT]:LINE:ARCH).
			main, _, _ := strings.Cut(pk, ":")
			name, variant, _ := strings.Cut(main, "/")
			var extra []string
			for _, a := range p.AliasList() {
				if a != name && !strings.HasPrefix(a, name+"/") {
					extra = append(extra, a)
				}
			}
			c.relinkLines(name, variant, osarch.Canonical(p.Arch), extra)
		}
	}
	for _, it := range v.Items {
		gone = append(gone, it.Path)
	}
	refs := c.Referenced()
	for _, path := range gone {
		if !refs[path] {
			c.retire(path, now)
		}
	}
}
