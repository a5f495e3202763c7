package catalog

import (
	"fmt"
	"maps"
	"slices"

	"github.com/incus-appliance/registry/internal/osarch"
)

// VersionCopy is one version of a product taken whole from another
// catalog (a mirror's source): the product's fields, the version key and
// its items, with their paths as the source names them.
type VersionCopy struct {
	Product string
	// Meta holds the product's fields; its Versions are ignored.
	Meta    Product
	Version string
	Items   map[string]Item
	Label   string
	PubName string
}

// Paths lists the files of the copy, sorted.
func (vc VersionCopy) Paths() []string {
	var out []string
	for _, it := range vc.Items {
		out = append(out, it.Path)
	}
	return sortedSet(out)
}

// Check applies the rules that do not depend on a destination: a valid
// product key, architecture, aliases and version key, and item paths under images/
// (the only files a registry serves and prunes).
func (vc VersionCopy) Check() error {
	if err := ValidateProductKey(vc.Product); err != nil {
		return err
	}
	if _, err := osarch.Normalize(vc.Meta.Arch); err != nil {
		return fmt.Errorf("product %s: %w", vc.Product, err)
	}
	for _, a := range vc.Meta.AliasList() {
		if err := ValidateAlias(a); err != nil {
			return fmt.Errorf("product %s: %w", vc.Product, err)
		}
	}
	if err := checkVersionKey(vc.Version); err != nil {
		return fmt.Errorf("product %s: %w", vc.Product, err)
	}
	if len(vc.Items) == 0 {
		return fmt.Errorf("product %s version %s has no items", vc.Product, vc.Version)
	}
	for ik, it := range vc.Items {
		if err := it.check(); err != nil {
			return fmt.Errorf("product %s version %s item %s: %w", vc.Product, vc.Version, ik, err)
		}
		if !isImageFile(it.Path) {
			return fmt.Errorf("product %s version %s item %s: path %q is outside images/", vc.Product, vc.Version, ik, it.Path)
		}
	}
	return nil
}

// MergeResult says what MergeAll did with one copy.
type MergeResult struct {
	Changed bool
	// DroppedDeltas are delta items left out because the product lacks the
	// version they apply to.
	DroppedDeltas []string
	// Joined, when the copy changed a product another writer wrote (as
	// Merger.IntoExisting allows), names that writer.
	Joined string
}

// MergeAll adds copied versions to the catalog, in order, each with its
// own outcome (one failing does not stop the others):
//   - a product of the same key must describe the same image lineage
//     (arch, os, release, variant), or it is a product-key clash;
//   - a product another writer wrote gets nothing added unless
//     by.IntoExisting (writer.go); a new product records by.Writer;
//   - an alias another product on the same architecture owns is a clash;
//   - the version, when present, must hold the same items (then nothing
//     changes); a fingerprint is published at most once in the catalog;
//   - delta items whose delta_base version the product does not have are
//     dropped (merge a product's versions oldest first).
//
// The newest version's product fields win; aliases accumulate. A copy
// that fails leaves the catalog unchanged. It indexes the catalog once, so
// merging many versions into a large catalog costs linear time.
func (c *Catalog) MergeAll(copies []VersionCopy, by Merger) ([]MergeResult, []error) {
	idx := c.newMergeIndex()
	res, errs := make([]MergeResult, len(copies)), make([]error, len(copies))
	for i, vc := range copies {
		res[i], errs[i] = c.merge(vc, by, idx)
	}
	return res, errs
}

// mergeIndex is what MergeAll looks up across the whole catalog: who owns an
// alias on an architecture, where a fingerprint is published.
type mergeIndex struct {
	owners map[string]string    // arch + "\x00" + alias → product
	fps    map[string][2]string // fingerprint → product, version
}

func (c *Catalog) newMergeIndex() *mergeIndex {
	idx := &mergeIndex{owners: map[string]string{}, fps: map[string][2]string{}}
	for _, pk := range c.ProductKeys() {
		idx.addProduct(pk, c.Products[pk])
	}
	return idx
}

func (idx *mergeIndex) addProduct(pk string, p *Product) {
	for _, a := range p.AliasList() {
		k := osarch.Canonical(p.Arch) + "\x00" + a
		if _, ok := idx.owners[k]; !ok {
			idx.owners[k] = pk
		}
	}
	for vk, v := range p.Versions {
		for _, vi := range v.Images() {
			if _, ok := idx.fps[vi.Fingerprint]; !ok {
				idx.fps[vi.Fingerprint] = [2]string{pk, vk}
			}
		}
	}
}

func (c *Catalog) merge(vc VersionCopy, by Merger, idx *mergeIndex) (MergeResult, error) {
	var res MergeResult
	if err := vc.Check(); err != nil {
		return res, err
	}
	arch := osarch.Canonical(vc.Meta.Arch)
	p := c.Products[vc.Product]
	if p != nil {
		if osarch.Canonical(p.Arch) != arch || p.OS != vc.Meta.OS || p.Release != vc.Meta.Release || p.Variant != vc.Meta.Variant {
			return res, fmt.Errorf("product key clash: %s is already in the registry as %s/%s/%s on %s, the source's is %s/%s/%s on %s: filter it out or mirror into another registry",
				vc.Product, p.OS, p.Release, p.Variant, p.Arch, vc.Meta.OS, vc.Meta.Release, vc.Meta.Variant, vc.Meta.Arch)
		}
	}
	for _, a := range vc.Meta.AliasList() {
		if p != nil && p.hasAlias(a) {
			continue // its own already (and so nobody else's)
		}
		if owner := idx.owners[arch+"\x00"+a]; owner != "" && owner != vc.Product {
			return res, &AliasOwnedError{Alias: a, Arch: arch, Owner: owner, Source: vc.Product}
		}
	}
	v, deltas, err := c.mergedVersion(vc, p, idx, &res)
	if err != nil {
		return res, err
	}
	aliases := mergedAliases(p, vc.Meta)
	if p != nil && (v != nil || len(deltas) > 0 || aliases != p.Aliases) {
		if res.Joined, err = by.checkWriter(vc.Product, p); err != nil {
			return MergeResult{}, err
		}
	}
	if p == nil {
		p = &Product{Versions: map[string]*Version{}, Writer: by.Writer}
		c.Products[vc.Product] = p
	}
	if len(deltas) > 0 {
		// Deltas are additive: one whose base has arrived since is added.
		maps.Copy(p.Versions[vc.Version].Items, deltas)
		c.unretire(vc.Paths()...)
		res.Changed = true
	}
	if v != nil {
		if len(p.Versions) == 0 || vc.Version >= slices.Max(slices.Collect(maps.Keys(p.Versions))) {
			m := vc.Meta
			p.Arch, p.OS, p.Release, p.ReleaseTitle, p.Variant = arch, m.OS, m.Release, m.ReleaseTitle, m.Variant
			p.Requirements, p.SupportEOL, p.Supported = maps.Clone(m.Requirements), m.SupportEOL, m.Supported
			p.Version, p.Custom = m.Version, maps.Clone(m.Custom)
		}
		p.Versions[vc.Version] = v
		c.unretire(vc.Paths()...)
		res.Changed = true
	}
	res.Changed = res.Changed || p.Aliases != aliases
	p.Aliases = aliases
	if res.Changed && p.Writer == "" {
		p.Writer = by.Writer // told to add to a product recording no writer
	}
	if res.Changed {
		idx.addProduct(vc.Product, &Product{Arch: p.Arch, Aliases: p.Aliases, Versions: map[string]*Version{vc.Version: p.Versions[vc.Version]}})
	}
	return res, nil
}

// mergedVersion is what vc adds to product p (nil: none yet): the version
// to add (nil when p has it already) or, for a version p has, the delta
// items it lacks. Delta items whose base p lacks are left out (listed in
// res.DroppedDeltas). Different content under the version's key, or an
// image the catalog already has elsewhere, is an error.
func (c *Catalog) mergedVersion(vc VersionCopy, p *Product, idx *mergeIndex, res *MergeResult) (*Version, map[string]Item, error) {
	v := &Version{Items: maps.Clone(vc.Items), Label: vc.Label, PubName: vc.PubName}
	for ik, it := range v.Items {
		if it.DeltaBase != "" && (p == nil || p.Versions[it.DeltaBase] == nil) {
			delete(v.Items, ik)
			res.DroppedDeltas = append(res.DroppedDeltas, ik)
		}
	}
	slices.Sort(res.DroppedDeltas)
	if p != nil {
		if old := p.Versions[vc.Version]; old != nil {
			if !sameVersion(withoutDeltaItems(old), withoutDeltaItems(v)) {
				return nil, nil, fmt.Errorf("version %s of %s is already in the registry with different content (%s)", vc.Version, vc.Product, old.describe())
			}
			deltas := map[string]Item{}
			for ik, it := range v.Items {
				if _, ok := old.Items[ik]; !ok {
					deltas[ik] = it
				}
			}
			return nil, deltas, nil
		}
	}
	for _, vi := range v.Images() {
		if at, ok := idx.fps[vi.Fingerprint]; ok {
			return nil, nil, fmt.Errorf("image %s is already published as product %s version %s", vi.Fingerprint, at[0], at[1])
		}
	}
	return v, nil, nil
}

// mergedAliases is product p's aliases string (p nil: a new product) once
// the aliases of meta join them (they accumulate; the main alias stays).
func mergedAliases(p *Product, meta Product) string {
	q := &Product{}
	if p != nil {
		q.Aliases = p.Aliases
	}
	main := ""
	if l := q.AliasList(); len(l) > 0 {
		main = l[0]
	} else if l := meta.AliasList(); len(l) > 0 {
		main = l[0]
	}
	q.setAliases(main, append(q.AliasList(), meta.AliasList()...))
	return q.Aliases
}

// Copies returns every version of the catalog as a VersionCopy, by product
// then oldest version first (the order MergeAll needs for deltas), each
// followed by its VM delta anchor if it has one (anchor.go: the VM deltas
// of later versions name it).
func (c *Catalog) Copies() []VersionCopy {
	var out []VersionCopy
	for _, pk := range c.ProductKeys() {
		p := c.Products[pk]
		meta := *p
		meta.Versions = nil
		for _, vk := range p.VersionKeys() {
			for _, k := range []string{vk, anchorKey(vk)} {
				if v := p.Versions[k]; v != nil && (k == vk || p.isAnchor(k)) {
					out = append(out, VersionCopy{Product: pk, Meta: meta, Version: k, Items: v.Items, Label: v.Label, PubName: v.PubName})
				}
			}
		}
	}
	return out
}

// withoutDeltaItems is v without its items that name a delta_base (any
// delta ftype a source may use).
func withoutDeltaItems(v *Version) *Version {
	out := &Version{Items: map[string]Item{}, Label: v.Label, PubName: v.PubName}
	for ik, it := range v.Items {
		if it.DeltaBase == "" {
			out.Items[ik] = it
		}
	}
	return out
}
