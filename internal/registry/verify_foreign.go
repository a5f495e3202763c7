package registry

import (
	"fmt"
	"maps"
	"slices"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
)

// untrackedReason explains an unreferenced file that the catalog's
// registry_state does not account for.
const untrackedReason = "unreferenced and not accounted for: an interrupted upload, or it left the catalog behind publish's back " +
	"(another tool rewrote images.json); prune records it as retired at its next run and deletes it a grace period later"

// foreignChanges reports unreferenced files nobody accounted for: changed
// behind the registry's back (a catalog file without registry_state, which
// every commit of publish leaves, is reported by verifyIndex).
func foreignChanges(rep *VerifyReport) {
	n := 0
	for _, o := range rep.Orphans {
		if o.Reason == untrackedReason {
			n++
		}
	}
	if n > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d unreferenced files under images/ have no retirement record: the catalog changed behind publish's back, or uploads were interrupted (see the orphans)", n))
	}
}

// listedFiles checks every referenced file against a listing of images/:
// present, with the size the catalog says. Nothing is read.
func listedFiles(c *catalog.Catalog, objs []store.ObjectInfo, rep *VerifyReport) {
	sizes := make(map[string]int64, len(objs))
	for _, o := range objs {
		sizes[o.Key] = o.Size
	}
	seen := map[string]bool{}
	for _, pk := range c.ProductKeys() {
		p := c.Products[pk]
		for _, vk := range p.VersionKeys() {
			v := p.Versions[vk]
			rep.Images += len(v.Images())
			for _, ik := range slices.Sorted(maps.Keys(v.Items)) {
				it := v.Items[ik]
				if !seen[it.Path] {
					seen[it.Path] = true
					rep.Files++
				}
				size, ok := sizes[it.Path]
				switch {
				case !ok:
					rep.problem("%s version %s item %s: %s is missing", pk, vk, ik, it.Path)
				case size != it.Size:
					rep.problem("%s version %s item %s: %s has %d bytes, the catalog says %d", pk, vk, ik, it.Path, size, it.Size)
				}
			}
		}
	}
}
