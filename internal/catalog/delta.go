package catalog

import (
	"fmt"
	"maps"
	"slices"

	"github.com/incus-appliance/registry/internal/digest"
)

// FTypeSquashfsDelta is a VCDIFF delta turning the squashfs root of the
// version named by the item's delta_base into this version's root. The
// Incus daemon applies it on image refresh (when it has xdelta3 and still
// holds the base image); clients that cannot use it take the full root.
const FTypeSquashfsDelta = "squashfs.vcdiff"

// Delta is a delta from an older version of the same product to an image's
// root, published with the image (Image.Delta).
type Delta struct {
	// Base is the version key of the base: the product's newest version
	// older than the image (DeltaBase).
	Base string
	// BaseFingerprint is the base image's fingerprint; the client finds
	// its local copy of the base by it.
	BaseFingerprint string
	// File is the delta file's digest and size.
	File FileRef
}

// deltaItemKey is the item key of a delta against version base (item keys
// are free-form; images.linuxcontainers.org uses the same form).
func deltaItemKey(base string) string { return "delta-" + base }

// DeltaBase returns the version a new version vk of product pk takes its
// delta from: the product's newest version older than vk, when that
// version has a squashfs image. Only that one version gets a delta (Incus
// applies the first usable delta it finds).
func (c *Catalog) DeltaBase(pk, vk string) (base string, img VersionImage, ok bool) {
	p := c.Products[pk]
	if p == nil {
		return "", VersionImage{}, false
	}
	for _, k := range slices.Backward(p.VersionKeys()) {
		if k >= vk {
			continue
		}
		for _, vi := range p.Versions[k].Images() {
			if vi.Kind == RootSquashfs {
				return k, vi, true
			}
		}
		return "", VersionImage{}, false
	}
	return "", VersionImage{}, false
}

// checkDelta applies the delta rules to an image about to become version
// vk of product p (nil when new): a squashfs image, a valid digest, and a
// base that is an older version of the same product, still in the catalog,
// whose squashfs image has the fingerprint the delta was made from.
func (img Image) checkDelta(pk string, p *Product, vk string) error {
	d := img.Delta
	if img.RootKind != RootSquashfs {
		return fmt.Errorf("image %s: a delta needs a squashfs root, not %s", img.Name, img.RootKind)
	}
	if !digest.IsSHA256(d.BaseFingerprint) || !digest.IsSHA256(d.File.SHA256) || d.File.Size <= 0 {
		return fmt.Errorf("image %s: delta: base fingerprint and file digest must be 64 lowercase hex digits, size positive", img.Name)
	}
	if d.Base >= vk {
		return fmt.Errorf("image %s: delta_base %s is not older than version %s", img.Name, d.Base, vk)
	}
	var base *Version
	if p != nil {
		base = p.Versions[d.Base]
	}
	if base == nil {
		return fmt.Errorf("image %s: delta_base %s names a version that %s does not have", img.Name, d.Base, pk)
	}
	if !slices.ContainsFunc(base.Images(), func(vi VersionImage) bool {
		return vi.Kind == RootSquashfs && vi.Fingerprint == d.BaseFingerprint
	}) {
		return fmt.Errorf("image %s: delta_base %s of %s is not the squashfs image %s the delta was made from", img.Name, d.Base, pk, d.BaseFingerprint)
	}
	return nil
}

// sameImage reports whether two versions hold the same image: the same
// items but for their deltas and provenance, which two publishes of one
// image may make differently (another xdelta3, another build run or gate
// report); a version keeps those it was first published with.
func sameImage(a, b *Version) bool {
	return sameVersion(a.withoutAttachments(), b.withoutAttachments())
}

// withoutAttachments returns a copy of the version without its delta and
// provenance items.
func (v *Version) withoutAttachments() *Version {
	out := *v
	out.Items = maps.Clone(v.Items)
	maps.DeleteFunc(out.Items, func(_ string, it Item) bool {
		return it.FType == FTypeSquashfsDelta || it.FType == FTypeProvenance
	})
	return &out
}

// Deltas returns the version's delta items by item key.
func (v *Version) Deltas() map[string]Item {
	out := map[string]Item{}
	for k, it := range v.Items {
		if it.FType == FTypeSquashfsDelta {
			out[k] = it
		}
	}
	return out
}

// dropDeltasFrom deletes the delta items of product p whose base is
// version base (which is leaving the catalog) and returns their paths: a
// delta whose base left the catalog is never listed.
func (p *Product) dropDeltasFrom(base string) []string {
	var paths []string
	for _, v := range p.Versions {
		for k, it := range v.Items {
			if it.FType == FTypeSquashfsDelta && it.DeltaBase == base {
				paths = append(paths, it.Path)
				delete(v.Items, k)
			}
		}
	}
	return paths
}

// deltaProblems lists what is wrong with version vk's delta items. When
// the catalog was last written by another tool (foreign), a delta whose
// base it removed is only a warning.
func (p *Product) deltaProblems(pk, vk string, foreign bool) []string {
	var out []string
	v := p.Versions[vk]
	for _, k := range slices.Sorted(maps.Keys(v.Deltas())) {
		it := v.Items[k]
		where := fmt.Sprintf("product %s version %s item %s", pk, vk, k)
		switch base := p.Versions[it.DeltaBase]; {
		case it.DeltaBase == "":
			out = append(out, where+": a delta without delta_base")
		case foreign && p.danglingDelta(it):
			// Another tool rewrote the catalog and removed the base: a
			// warning (Warnings); Incus ignores the delta, prune drops it.
		case base == nil:
			out = append(out, fmt.Sprintf("%s: delta_base %s names a version that is not in the catalog (Incus ignores the delta)", where, it.DeltaBase))
		case it.DeltaBase >= vk:
			out = append(out, fmt.Sprintf("%s: delta_base %s is not older than the version", where, it.DeltaBase))
		case !slices.ContainsFunc(base.Images(), func(vi VersionImage) bool { return vi.Kind == RootSquashfs }):
			out = append(out, fmt.Sprintf("%s: delta_base %s has no squashfs image", where, it.DeltaBase))
		}
		if !slices.ContainsFunc(v.Images(), func(vi VersionImage) bool { return vi.Kind == RootSquashfs }) {
			out = append(out, where+": a delta in a version without a squashfs image")
		}
	}
	return out
}
