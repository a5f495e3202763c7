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

// FTypeDiskDelta is a VCDIFF delta turning a VM disk (disk-kvm.img)
// into this version's; its delta_base is a VM delta anchor (anchor.go).
const FTypeDiskDelta = "disk-kvm.img.vcdiff"

// deltaFTypes are the delta ftypes by the kind of root they rebuild: the
// kinds Incus applies deltas to (its root ftype followed by ".vcdiff").
var deltaFTypes = map[RootKind]string{
	RootSquashfs: FTypeSquashfsDelta,
	RootQCOW2:    FTypeDiskDelta,
}

// DeltaFType is the ftype of deltas to a root of kind ("" when Incus
// applies none).
func DeltaFType(kind RootKind) string { return deltaFTypes[kind] }

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
	// Version is the key the delta names as delta_base: the version, or
	// for a VM image its anchor (anchor.go).
	Version string
	// Image is its image of the new version's root kind.
	Image VersionImage
}

// DeltaBases returns the versions a new version vk of product pk takes
// deltas to a root of kind from: the product's newest depth versions
// older than vk with an image of that kind that a delta can name as its
// base (deltaBase), newest first. A host holding any of them refreshes
// with a delta; one holding an older version downloads the full root.
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
		if kind == RootQCOW2 {
			k = anchorKey(k)
		}
		if vi, ok := p.deltaBase(k, kind); ok {
			out = append(out, DeltaBase{Version: k, Image: vi})
		}
	}
	return out
}

// deltaBase returns the image of kind that a delta naming version key as
// its delta_base rebuilds from, as Incus resolves it: the fingerprint in
// the combined_squashfs_sha256 field of the version's incus.tar.xz item
// (Incus reads the first one it meets, whatever the delta's root kind),
// which must be the fingerprint of the version's image of that kind (of
// its owner's, for an anchor). ok is false when Incus would resolve no
// base, or another image.
func (p *Product) deltaBase(key string, kind RootKind) (VersionImage, bool) {
	v := p.Versions[key]
	if v == nil {
		return VersionImage{}, false
	}
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
	if p.isAnchor(key) {
		owner, _ := anchorOwner(key)
		v = p.Versions[owner]
	}
	for _, vi := range v.Images() {
		if vi.Kind == kind && vi.Fingerprint == src {
			return vi, true
		}
	}
	return VersionImage{}, false
}

// baseVersion is the version whose age a delta_base stands for: the
// version itself, or an anchor's owner.
func baseVersion(key string) string {
	if owner, ok := anchorOwner(key); ok {
		return owner
	}
	return key
}

// checkDeltas applies the delta rules to an image about to become version
// vk of product p (nil when new): deltas of its root only for a kind
// Incus applies deltas to, valid digests, and each base an older version
// of the same product, still in the catalog, whose image the delta was
// made from is what Incus resolves delta_base to (deltaBase); one delta
// per base.
func (img Image) checkDeltas(pk string, p *Product, vk string) error {
	if len(img.Deltas) > 0 && deltaFTypes[img.RootKind] == "" {
		return fmt.Errorf("image %s: a delta needs a squashfs root or a VM disk, not %s", img.Name, img.RootKind)
	}
	if err := checkDeltaList(img.Name, pk, p, vk, img.RootKind, img.Deltas); err != nil {
		return err
	}
	if img.VM != nil {
		return checkDeltaList(img.Name, pk, p, vk, RootQCOW2, img.VM.Deltas)
	}
	return nil
}

// checkDeltaList checks the deltas to an image's root of kind.
func checkDeltaList(name, pk string, p *Product, vk string, kind RootKind, deltas []Delta) error {
	seen := map[string]bool{}
	for _, d := range deltas {
		if !digest.IsSHA256(d.BaseFingerprint) || !digest.IsSHA256(d.File.SHA256) || d.File.Size <= 0 {
			return fmt.Errorf("image %s: delta: base fingerprint and file digest must be 64 lowercase hex digits, size positive", name)
		}
		if seen[d.Base] {
			return fmt.Errorf("image %s: two deltas from version %s", name, d.Base)
		}
		seen[d.Base] = true
		if baseVersion(d.Base) >= vk {
			return fmt.Errorf("image %s: delta_base %s is not older than version %s", name, d.Base, vk)
		}
		if p == nil || p.Versions[d.Base] == nil {
			return fmt.Errorf("image %s: delta_base %s names a version that %s does not have", name, d.Base, pk)
		}
		if vi, ok := p.deltaBase(d.Base, kind); !ok || vi.Fingerprint != d.BaseFingerprint {
			return fmt.Errorf("image %s: delta_base %s of %s is not the %s image %s the delta was made from", name, d.Base, pk, kind, d.BaseFingerprint)
		}
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
		return isDeltaFType(it.FType) || it.FType == FTypeProvenance
	})
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
// them (deltaBase); ok is false when either is missing (Problems says
// why).
func (p *Product) DeltaImages(vk string, it Item) (base, target VersionImage, ok bool) {
	kind := deltaKind(it.FType)
	v := p.Versions[vk]
	if v == nil || kind == "" {
		return base, target, false
	}
	i := slices.IndexFunc(v.Images(), func(vi VersionImage) bool { return vi.Kind == kind })
	if i < 0 {
		return base, target, false
	}
	base, ok = p.deltaBase(it.DeltaBase, kind)
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
		case baseVersion(it.DeltaBase) >= vk:
			out = append(out, fmt.Sprintf("%s: delta_base %s is not older than the version", where, it.DeltaBase))
		default:
			if _, ok := p.deltaBase(it.DeltaBase, kind); !ok {
				out = append(out, fmt.Sprintf("%s: Incus resolves delta_base %s (its incus.tar.xz's combined_squashfs_sha256) to no %s image: a host would apply the delta to another image, or never", where, it.DeltaBase, kind))
			}
		}
		if !slices.ContainsFunc(v.Images(), func(vi VersionImage) bool { return vi.Kind == kind }) {
			out = append(out, fmt.Sprintf("%s: a delta in a version without a %s image", where, kind))
		}
	}
	return out
}
