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

// deltaFTypes are the delta ftypes by the kind of root they rebuild: the
// kinds Incus applies deltas to (its root ftype followed by ".vcdiff").
var deltaFTypes = map[RootKind]string{
	RootSquashfs: FTypeSquashfsDelta,
}

// isDeltaFType reports whether ftype is a delta Incus applies.
func isDeltaFType(ftype string) bool {
	for _, ft := range deltaFTypes {
		if ft == ftype {
			return true
		}
	}
	return false
}

// Delta is a delta from an older version of the same product to an image's
// root, published with the image (Image.Deltas).
type Delta struct {
	// Base is the version key of the base: an older version of the
	// product with an image of the same root kind (DeltaBases).
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

// DeltaBase is a version a new version can take a delta from.
type DeltaBase struct {
	// Version is its version key.
	Version string
	// Image is its image of the new version's root kind.
	Image VersionImage
}

// DeltaBases returns the versions a new version vk of product pk, whose
// root is of kind, takes deltas from: the product's newest depth versions
// older than vk that have a usable base image of that kind
// (deltaSource), newest first. A host holding any of them refreshes with
// a delta; one holding an older version downloads the full root.
func (c *Catalog) DeltaBases(pk, vk string, kind RootKind, depth int) []DeltaBase {
	p := c.Products[pk]
	if p == nil || deltaFTypes[kind] == "" {
		return nil
	}
	var out []DeltaBase
	for _, k := range slices.Backward(p.VersionKeys()) {
		if len(out) >= depth {
			break
		}
		if k >= vk {
			continue
		}
		if vi, ok := p.Versions[k].deltaSource(kind); ok {
			out = append(out, DeltaBase{Version: k, Image: vi})
		}
	}
	return out
}

// deltaSource returns the version's image of kind that a delta naming the
// version as delta_base rebuilds from, as Incus resolves it: the
// fingerprint in the combined_squashfs_sha256 field of the version's
// incus.tar.xz item (Incus reads the first one it meets, whatever the
// delta's root kind), which must be the fingerprint of the version's one
// image of that kind. ok is false when Incus would resolve no base, or
// another image's.
func (v *Version) deltaSource(kind RootKind) (VersionImage, bool) {
	src := ""
	for _, it := range v.Items {
		if it.FType != FTypeIncusMeta {
			continue
		}
		if it.CombinedSquashfsSHA256 == "" || src != "" && it.CombinedSquashfsSHA256 != src {
			return VersionImage{}, false
		}
		src = it.CombinedSquashfsSHA256
	}
	for _, vi := range v.Images() {
		if vi.Kind == kind && vi.Fingerprint == src {
			return vi, true
		}
	}
	return VersionImage{}, false
}

// checkDeltas applies the delta rules to an image about to become version
// vk of product p (nil when new): a root kind Incus applies deltas to,
// valid digests, and each base an older version of the same product,
// still in the catalog, whose image the delta was made from is what
// Incus resolves delta_base to (deltaSource); one delta per base.
func (img Image) checkDeltas(pk string, p *Product, vk string) error {
	if len(img.Deltas) > 0 && deltaFTypes[img.RootKind] == "" {
		return fmt.Errorf("image %s: a delta needs a squashfs root, not %s", img.Name, img.RootKind)
	}
	seen := map[string]bool{}
	for _, d := range img.Deltas {
		if !digest.IsSHA256(d.BaseFingerprint) || !digest.IsSHA256(d.File.SHA256) || d.File.Size <= 0 {
			return fmt.Errorf("image %s: delta: base fingerprint and file digest must be 64 lowercase hex digits, size positive", img.Name)
		}
		if seen[d.Base] {
			return fmt.Errorf("image %s: two deltas from version %s", img.Name, d.Base)
		}
		seen[d.Base] = true
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
		if vi, ok := base.deltaSource(img.RootKind); !ok || vi.Fingerprint != d.BaseFingerprint {
			return fmt.Errorf("image %s: delta_base %s of %s is not the %s image %s the delta was made from", img.Name, d.Base, pk, img.RootKind, d.BaseFingerprint)
		}
	}
	return nil
}

// withoutDeltas returns a copy of the version without its delta items:
// two versions that differ only in their deltas are the same image.
func (v *Version) withoutDeltas() *Version {
	out := *v
	out.Items = maps.Clone(v.Items)
	maps.DeleteFunc(out.Items, func(_ string, it Item) bool { return isDeltaFType(it.FType) })
	return &out
}

// Deltas returns the version's delta items by item key.
func (v *Version) Deltas() map[string]Item {
	out := map[string]Item{}
	for k, it := range v.Items {
		if isDeltaFType(it.FType) {
			out[k] = it
		}
	}
	return out
}

// deltaKind is the root kind a delta item rebuilds.
func deltaKind(ftype string) RootKind {
	for k, ft := range deltaFTypes {
		if ft == ftype {
			return k
		}
	}
	return ""
}

// DeltaImages returns, for the delta item it of version vk, the image
// the delta rebuilds and the base image it applies to, as Incus resolves
// them (deltaSource); ok is false when either is missing (Problems says
// why).
func (p *Product) DeltaImages(vk string, it Item) (base, target VersionImage, ok bool) {
	kind := deltaKind(it.FType)
	v, bv := p.Versions[vk], p.Versions[it.DeltaBase]
	if v == nil || bv == nil || kind == "" {
		return base, target, false
	}
	i := slices.IndexFunc(v.Images(), func(vi VersionImage) bool { return vi.Kind == kind })
	if i < 0 {
		return base, target, false
	}
	base, ok = bv.deltaSource(kind)
	return base, v.Images()[i], ok
}

// dropDeltasFrom deletes the delta items of product p whose base is
// version base (which is leaving the catalog) and returns their paths: a
// delta whose base left the catalog is never listed.
func (p *Product) dropDeltasFrom(base string) []string {
	var paths []string
	for _, v := range p.Versions {
		for k, it := range v.Items {
			if isDeltaFType(it.FType) && it.DeltaBase == base {
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
		kind := deltaKind(it.FType)
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
		case !slices.ContainsFunc(base.Images(), func(vi VersionImage) bool { return vi.Kind == kind }):
			out = append(out, fmt.Sprintf("%s: delta_base %s has no %s image", where, it.DeltaBase, kind))
		default:
			if _, ok := base.deltaSource(kind); !ok {
				out = append(out, fmt.Sprintf("%s: Incus resolves delta_base %s (its incus.tar.xz's combined_squashfs_sha256) to no %s image of it: a host holding the base would apply the delta to another image", where, it.DeltaBase, kind))
			}
		}
		if !slices.ContainsFunc(v.Images(), func(vi VersionImage) bool { return vi.Kind == kind }) {
			out = append(out, fmt.Sprintf("%s: a delta in a version without a %s image", where, kind))
		}
	}
	return out
}
