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

// Layout is how a registry's catalog is split into files: its number of
// product files. A registry the size of images.linuxcontainers.org (tens
// of megabytes of images.json) cannot rewrite one file per publish
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
// registry of several files lists the aliases its file holds (and the
// ones its live publishes claim) as "alias@arch" in registry_aliases,
// which clients ignore, and a publisher checks the index after writing
// its claim.
//
// With one file (N = 1, the default; 0 means the same) images.json holds
// everything: it is both the root and the only product file, no other
// file can hold an alias or an image, and its index entry carries no
// claims. This file is the one place where the two cases differ.
type Layout int

// MaxShards bounds the number of product files.
const MaxShards = 1024

// FormatRoot is the format of the root (images.json) of a registry of
// several catalog files. It is not "products:1.0" on purpose: a tool that
// knows only one catalog file (an older publish, incus-simplestreams)
// refuses the root instead of taking it for an empty catalog (and pruning
// every file). Clients never read it: index.json does not name it.
const FormatRoot = "registry-root:1.0"

// CheckShards validates a product-file count.
func CheckShards(n int) error {
	if n < 1 || n > MaxShards {
		return fmt.Errorf("catalog shards must be between 1 and %d, not %d", MaxShards, n)
	}
	return nil
}

// ShardCountFixed refuses to give a registry of have catalog files another
// count.
func ShardCountFixed(have int) error {
	return fmt.Errorf("this registry has %d catalog file(s): the number of catalog files is chosen when the registry is created", have)
}

// Count is the number of product files.
func (l Layout) Count() int { return max(int(l), 1) }

// single reports whether images.json is the only catalog file.
func (l Layout) single() bool { return l.Count() == 1 }

// Files lists the product files: images.json alone, or images-1.json to
// images-N.json.
func (l Layout) Files() []string {
	if l.single() {
		return []string{ImagesPath}
	}
	out := make([]string, l.Count())
	for k := range out {
		out[k] = productFilePath(k + 1)
	}
	return out
}

// FileOf returns the path of the file holding productKey.
func (l Layout) FileOf(productKey string) string {
	if l.single() {
		return ImagesPath
	}
	h := fnv.New32a()
	h.Write([]byte(shardFamily(productKey)))
	return productFilePath(1 + int(h.Sum32()%uint32(l.Count())))
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

// Others lists the product files other than path: the files that may
// hold an alias or an image a change of path must not take.
func (l Layout) Others(path string) []string {
	return slices.DeleteFunc(l.Files(), func(p string) bool { return p == path })
}

// Claims returns the "alias@arch" claims a pending intent for product
// productKey of file c records: its aliases as they stand in c, when
// other files could hold them (none with one file).
func (l Layout) Claims(c *Catalog, productKey string) []string {
	if l.single() {
		return nil
	}
	return c.pendingAliases(productKey)
}

// Entry returns the index entry of product file path, whose catalog is c:
// its products (and live pending ones) and, with several files, its alias
// claims.
func (l Layout) Entry(c *Catalog, path string, now time.Time) IndexEntry {
	e := IndexEntry{DataType: DataTypeImages, Path: path, Format: FormatProducts, Products: c.indexProducts(now)}
	if !l.single() {
		e.Aliases = c.ClaimedAliases(now)
	}
	return e
}

// Index returns index.json for the product files' entries, given by path;
// a missing entry lists nothing yet. The index of several files is
// written compact: it lists every product and alias (megabytes at scale).
func (l Layout) Index(entries map[string]IndexEntry) *Index {
	ix := &Index{Format: FormatIndex, Index: map[string]IndexEntry{}, compact: !l.single()}
	for _, p := range l.Files() {
		e, ok := entries[p]
		if !ok {
			e = IndexEntry{DataType: DataTypeImages, Path: p, Format: FormatProducts, Products: []string{}}
		}
		if e.Products == nil && !l.single() {
			e.Products = []string{}
		}
		ix.Index[contentIDOf(p)] = e
	}
	return ix
}

// BuildIndex returns the index.json of a one-file registry listing the
// given product keys (sorted, deduplicated).
func BuildIndex(products []string) *Index {
	e := IndexEntry{DataType: DataTypeImages, Path: ImagesPath, Format: FormatProducts, Products: sortedSet(products)}
	return Layout(1).Index(map[string]IndexEntry{ImagesPath: e})
}

// Whole returns the registry as one catalog, from its root and its
// product files (in Files' order): the root itself with one file, else a
// read-only view joining the products of every file with a State that
// holds the root's prune announcement and every file's pending intents
// and retirements (the latest retirement of a path wins: it left the
// catalog then).
func (l Layout) Whole(root *Catalog, files []*Catalog) *Catalog {
	if l.single() {
		return root
	}
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

// Problems is Problems and Warnings for a registry (root and product
// files, in Files' order): each file's own; with several files, the
// aliases and fingerprints two files share (Incus merges the files and
// resolves such an alias to one of them only) and products or publishes
// in flight in the root (clients do not see them).
func (l Layout) Problems(root *Catalog, files []*Catalog, now time.Time) (problems, warnings []string) {
	if !l.single() && (len(root.Products) > 0 || len(root.LivePending(now)) > 0) {
		problems = append(problems, fmt.Sprintf("%s is the root of %d catalog files but holds products or publishes in flight (a tool that knows only one catalog file wrote it): clients do not see them", ImagesPath, len(files)))
	}
	paths := l.Files()
	aliases := map[string]string{}      // alias@arch → path: product
	fingerprints := map[string]string{} // fingerprint → path: product version
	for i, f := range files {
		problems = append(problems, f.Problems()...)
		warnings = append(warnings, f.Warnings()...)
		for _, pk := range f.ProductKeys() {
			p := f.Products[pk]
			where := paths[i] + ": " + pk
			for _, a := range p.AliasList() {
				k := aliasClaim(a, p.Arch)
				if other, ok := aliases[k]; ok && !strings.HasPrefix(other, paths[i]+": ") {
					problems = append(problems, fmt.Sprintf("alias %q on %s is listed by both %s and %s: Incus resolves it to one of them only", a, p.Arch, other, where))
				}
				aliases[k] = where
			}
			for _, vk := range p.VersionKeys() {
				for _, vi := range p.Versions[vk].Images() {
					if other, ok := fingerprints[vi.Fingerprint]; ok && !strings.HasPrefix(other, paths[i]+": ") {
						problems = append(problems, fmt.Sprintf("image %s is published twice: %s and %s version %s", vi.Fingerprint, other, where, vk))
					}
					fingerprints[vi.Fingerprint] = where + " version " + vk
				}
			}
		}
	}
	return problems, warnings
}

// Layout returns the layout of the registry whose root (images.json) this
// is.
func (c *Catalog) Layout() Layout {
	if c.State == nil || c.State.Shards < 1 {
		return 1
	}
	return Layout(c.State.Shards)
}

// ClientsRead reports whether clients read c, a catalog file: a product
// file does (images.json of a registry of one file, images-K.json), the
// root of several files does not (index.json does not name it). A signed
// registry signs the files clients read (stamp.go).
func (c *Catalog) ClientsRead() bool { return c.Layout().single() }

// SetShards makes c, the images.json of a registry being created, the
// root of n product files. Only a fresh catalog can: no count chosen yet,
// no product, no publish in flight.
func (c *Catalog) SetShards(n int) error {
	if err := CheckShards(n); err != nil {
		return err
	}
	if Layout(n) == c.Layout() {
		return nil
	}
	if !c.Layout().single() || len(c.Products) > 0 || c.State != nil && len(c.State.Pending) > 0 {
		return ShardCountFixed(c.Layout().Count())
	}
	c.state().Shards = n
	c.Format = FormatRoot
	return nil
}

// NewShard returns an empty product file for path.
func NewShard(path string) *Catalog {
	c := New()
	c.ContentID = contentIDOf(path)
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
		out = append(out, c.pendingAliases(pk)...)
	}
	for _, p := range c.LivePending(now) {
		out = append(out, p.Aliases...)
	}
	return sortedSet(out)
}

// pendingAliases returns the claims a pending intent for product p of c
// carries: its aliases as they stand in c.
func (c *Catalog) pendingAliases(productKey string) []string {
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
