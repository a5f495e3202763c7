package catalog

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/osarch"
)

// Sharded catalogs. A registry the size of images.linuxcontainers.org
// (tens of megabytes of images.json) cannot rewrite one file per publish
// cheaply, so a registry may be created with N > 1 product files:
//
//   - images.json is then the root: no products, only the registry's
//     shared bookkeeping (State.Shards = N, prune announcements, files a
//     prune found unaccounted for);
//   - streams/v1/images-K.json (K = 1..N) hold the products, each with its
//     own State (commit ids, pending intents, retired files), so a publish
//     reads and rewrites one small file;
//   - index.json names every product file; clients (Incus, LXD) read every
//     "image-downloads" entry with products and merge them.
//
// A product's file is chosen by hashing its family (shardFamily), so the
// line products of an appliance, whose aliases move between them, share
// one file. Aliases must be unique across files: every index entry of a
// sharded registry lists the aliases its file holds (and the ones its live
// publishes claim) as "alias@arch" in registry_aliases, which clients
// ignore, and a publisher checks the index after writing its claim.
//
// With N = 1 (the default) images.json holds everything, as before.

// MaxShards bounds the number of product files.
const MaxShards = 1024

// ShardCountFixed refuses to give a registry of have catalog files another
// count.
func ShardCountFixed(have int) error {
	return fmt.Errorf("this registry has %d catalog file(s): the number of catalog files is chosen when the registry is created", have)
}

// CheckShards validates a product-file count.
func CheckShards(n int) error {
	if n < 1 || n > MaxShards {
		return fmt.Errorf("catalog shards must be between 1 and %d, not %d", MaxShards, n)
	}
	return nil
}

// shardFamily is what decides a product's file: the appliance name for
// keys this registry writes (NAME:ARCH, NAME:LINE:ARCH), so every line of
// an appliance lands in one file; the whole key otherwise (other tools'
// OS:RELEASE:VARIANT:ARCH keys), which spreads them evenly.
func shardFamily(productKey string) string {
	if strings.Count(productKey, ":") <= 2 {
		name, _, _ := strings.Cut(productKey, ":")
		return name
	}
	return productKey
}

// ShardOf returns the path of the file holding productKey in a catalog
// of n product files.
func ShardOf(productKey string, n int) string {
	if n <= 1 {
		return ImagesPath
	}
	h := fnv.New32a()
	h.Write([]byte(shardFamily(productKey)))
	return productFilePath(1 + int(h.Sum32()%uint32(n)))
}

// ProductPaths lists the product files of a catalog of n files.
func ProductPaths(n int) []string {
	if n <= 1 {
		return []string{ImagesPath}
	}
	out := make([]string, n)
	for k := range out {
		out[k] = productFilePath(k + 1)
	}
	return out
}

// FormatRoot is the format of the root (images.json) of a sharded
// registry. It is not "products:1.0" on purpose: a tool that knows only
// one catalog file (an older publish, incus-simplestreams) refuses the root
// instead of taking it for an empty catalog (and pruning every file).
// Clients never read it: index.json does not name it.
const FormatRoot = "registry-root:1.0"

// Shards returns the number of product files of the registry whose root
// (images.json) this is.
func (c *Catalog) Shards() int {
	if c.State == nil || c.State.Shards < 1 {
		return 1
	}
	return c.State.Shards
}

// SetShards makes c, the images.json of a registry being created, the
// root of n product files. Only a fresh catalog can: no count chosen yet,
// no product, no publish in flight.
func (c *Catalog) SetShards(n int) error {
	if err := CheckShards(n); err != nil {
		return err
	}
	if n == c.Shards() {
		return nil
	}
	if c.Shards() != 1 || len(c.Products) > 0 || c.State != nil && len(c.State.Pending) > 0 {
		return ShardCountFixed(c.Shards())
	}
	c.state().Shards = n
	c.Format = FormatRoot
	return nil
}

// NewShard returns an empty product file for path.
func NewShard(path string) *Catalog {
	c := New()
	if path != ImagesPath {
		c.ContentID = contentIDOf(path)
	}
	return c
}

// aliasClaim is how an alias on an architecture is written in
// registry_aliases and in pending intents.
func aliasClaim(alias, arch string) string {
	return alias + "@" + osarch.Canonical(arch)
}

// ClaimedAliases returns the "alias@arch" claims of the file: every
// product's aliases and those of its live pending publishes.
func (c *Catalog) ClaimedAliases(now time.Time) []string {
	var out []string
	for pk := range c.Products {
		out = append(out, c.PendingAliases(pk)...)
	}
	for _, p := range c.LivePending(now) {
		out = append(out, p.Aliases...)
	}
	return sortedSet(out)
}

// PendingAliases returns the claims a pending intent for product p of c
// carries: its aliases as they stand in c.
func (c *Catalog) PendingAliases(productKey string) []string {
	p := c.Products[productKey]
	if p == nil {
		return nil
	}
	var out []string
	for _, a := range p.AliasList() {
		out = append(out, aliasClaim(a, p.Arch))
	}
	return out
}

// ShardEntry returns the index entry of product file path (not
// images.json), listing products and alias claims.
func (c *Catalog) ShardEntry(path string, now time.Time) IndexEntry {
	return IndexEntry{
		DataType: DataTypeImages,
		Path:     path,
		Format:   FormatProducts,
		Products: c.IndexProducts(now),
		Aliases:  c.ClaimedAliases(now),
	}
}

// BuildShardedIndex returns the index of a catalog of n product files
// whose entries are given by path; a missing entry lists nothing yet.
func BuildShardedIndex(n int, entries map[string]IndexEntry) *Index {
	ix := &Index{Format: FormatIndex, Index: map[string]IndexEntry{}, compact: true}
	for k := 1; k <= n; k++ {
		p := productFilePath(k)
		e, ok := entries[p]
		if !ok {
			e = IndexEntry{DataType: DataTypeImages, Path: p, Format: FormatProducts, Products: []string{}}
		}
		if e.Products == nil {
			e.Products = []string{}
		}
		ix.Index[contentIDOf(p)] = e
	}
	return ix
}

// EntryByPath returns the index entry pointing at path.
func (ix *Index) EntryByPath(path string) (IndexEntry, bool) {
	for _, e := range ix.Index {
		if e.Path == path {
			return e, true
		}
	}
	return IndexEntry{}, false
}

// Entries returns the index entries keyed by path.
func (ix *Index) Entries() map[string]IndexEntry {
	out := map[string]IndexEntry{}
	for _, e := range ix.Index {
		out[e.Path] = e
	}
	return out
}

// AliasClash returns, for the first of claims that another entry than
// path's also lists, that claim and the other entry's path.
func (ix *Index) AliasClash(path string, claims []string) (claim, other string) {
	for _, k := range slices.Sorted(maps.Keys(ix.Index)) {
		e := ix.Index[k]
		if e.Path == path {
			continue
		}
		for _, c := range claims {
			if _, ok := slices.BinarySearch(e.Aliases, c); ok {
				return c, e.Path
			}
		}
	}
	return "", ""
}

// MergeShards returns a read-only view of a sharded registry as one
// catalog: the products of every file, and a State joining root's prune
// announcement with every file's pending intents and retirements (the
// latest retirement of a path wins: it left the catalog then).
func MergeShards(root *Catalog, files []*Catalog) *Catalog {
	out := New()
	st := &State{}
	if root.State != nil {
		st.Pruning = root.State.Pruning
		st.Shards = root.State.Shards
	}
	for _, c := range append([]*Catalog{root}, files...) {
		maps.Copy(out.Products, c.Products)
		if c.State == nil {
			continue
		}
		st.Pending = append(st.Pending, c.State.Pending...)
		for p, t := range c.State.Retired {
			if st.Retired == nil {
				st.Retired = map[string]time.Time{}
			}
			if old, ok := st.Retired[p]; !ok || t.After(old) {
				st.Retired[p] = t
			}
		}
	}
	out.State = st
	out.tidyState()
	return out
}

// InUse returns the paths the file references or a live pending publish
// of it protects.
func (c *Catalog) InUse(now time.Time) map[string]bool {
	out := c.Referenced()
	maps.Copy(out, c.pendingPaths(now))
	return out
}

// pendingPaths returns the paths live pending publishes protect.
func (c *Catalog) pendingPaths(now time.Time) map[string]bool {
	out := map[string]bool{}
	for _, p := range c.LivePending(now) {
		for _, path := range p.Paths {
			out[path] = true
		}
	}
	return out
}

// HasRetired reports whether the file records the retirement of any of
// paths.
func (c *Catalog) HasRetired(paths []string) bool {
	if c.State == nil {
		return false
	}
	return slices.ContainsFunc(paths, func(p string) bool { _, ok := c.State.Retired[p]; return ok })
}

// ShardProblems is Problems for the product files of a sharded registry:
// each file's own, and the aliases and fingerprints two files share
// (Incus merges the files and resolves such an alias to one of them only).
func ShardProblems(paths []string, files []*Catalog) []string {
	var out []string
	aliases := map[string]string{}      // alias@arch → path: product
	fingerprints := map[string]string{} // fingerprint → path: product version
	for i, f := range files {
		out = append(out, f.Problems()...)
		for _, pk := range f.ProductKeys() {
			p := f.Products[pk]
			where := paths[i] + ": " + pk
			for _, a := range p.AliasList() {
				k := aliasClaim(a, p.Arch)
				if other, ok := aliases[k]; ok && !strings.HasPrefix(other, paths[i]+": ") {
					out = append(out, fmt.Sprintf("alias %q on %s is listed by both %s and %s: Incus resolves it to one of them only", a, p.Arch, other, where))
				}
				aliases[k] = where
			}
			for _, vk := range p.VersionKeys() {
				for _, vi := range p.Versions[vk].Images() {
					if other, ok := fingerprints[vi.Fingerprint]; ok && !strings.HasPrefix(other, paths[i]+": ") {
						out = append(out, fmt.Sprintf("image %s is published twice: %s and %s version %s", vi.Fingerprint, other, where, vk))
					}
					fingerprints[vi.Fingerprint] = where + " version " + vk
				}
			}
		}
	}
	return out
}

// Clone returns a deep copy of the catalog (cheaper than parsing its JSON
// again: a publish starts several commits from one read).
func (c *Catalog) Clone() *Catalog {
	out := *c
	out.Products = make(map[string]*Product, len(c.Products))
	for k, p := range c.Products {
		q := *p
		q.Requirements, q.Custom = maps.Clone(p.Requirements), maps.Clone(p.Custom)
		q.Versions = make(map[string]*Version, len(p.Versions))
		for vk, v := range p.Versions {
			w := *v
			w.Items = maps.Clone(v.Items)
			q.Versions[vk] = &w
		}
		out.Products[k] = &q
	}
	if c.State != nil {
		st := *c.State
		st.Commits = slices.Clone(st.Commits)
		st.Retired = maps.Clone(st.Retired)
		st.Pending = slices.Clone(st.Pending)
		for i, p := range st.Pending {
			st.Pending[i].Paths, st.Pending[i].Aliases = slices.Clone(p.Paths), slices.Clone(p.Aliases)
		}
		if st.Pruning != nil {
			pr := *st.Pruning
			pr.Paths = slices.Clone(pr.Paths)
			st.Pruning = &pr
		}
		out.State = &st
	}
	return &out
}
