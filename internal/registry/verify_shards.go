package registry

import (
	"context"
	"fmt"
	"slices"

	"github.com/incus-appliance/registry/internal/catalog"
)

// verifyShards checks a sharded registry's root (no products, no
// publishes in flight: they belong in the product files) and index.json
// against the product files: one image-downloads entry per file, listing
// every product of it and the alias claims it backs, and every file still
// carrying registry_state.
func (r *Registry) verifyShards(ctx context.Context, root *catalog.Catalog, files []*catalog.Catalog, rep *VerifyReport) error {
	if len(root.Products) > 0 || len(root.LivePending(r.now())) > 0 {
		rep.problem("%s is the root of %d catalog files but holds products or publishes in flight (a tool that knows only one catalog file wrote it): clients do not see them", catalog.ImagesPath, len(files))
	}
	ix, err := r.verifyReadIndex(ctx, rep)
	if ix == nil || err != nil {
		return err
	}
	entries := ix.Entries()
	for i, key := range catalog.ProductPaths(len(files)) {
		c := files[i]
		if c.State == nil && len(c.Products) > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s has no registry_state: another tool rewrote it after publish's last commit; prune treats its unreferenced files as retired now", key))
		}
		e, ok := entries[key]
		if !ok {
			if len(c.Products) > 0 {
				rep.problem("%s has no entry for %s: clients do not see its %d products", catalog.IndexPath, key, len(c.Products))
			}
			continue
		}
		if e.DataType != catalog.DataTypeImages || e.Format != catalog.FormatProducts {
			rep.problem("%s: entry for %s has datatype %q and format %q, want %q and %q", catalog.IndexPath, key, e.DataType, e.Format, catalog.DataTypeImages, catalog.FormatProducts)
		}
		checkListed(rep, e.Products, c, key)
		if want := c.ClaimedAliases(r.now()); !slices.Equal(e.Aliases, want) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: the alias claims of %s are not the aliases it holds (an interrupted command; the next change to that file, or a publish needing one of them, repairs it)", catalog.IndexPath, key))
		}
	}
	return nil
}
