package registry

import (
	"context"
	"fmt"
	"slices"

	"github.com/incus-appliance/registry/internal/catalog"
)

// List returns what clients will see: every image, newest version of each
// product first.
func (r *Registry) List(ctx context.Context) ([]catalog.Entry, error) {
	c, etag, err := r.readCatalog(ctx)
	if err != nil {
		return nil, err
	}
	if etag == "" {
		return nil, fmt.Errorf("no registry here: %s does not exist (publish an image first)", catalog.ImagesPath)
	}
	return c.Entries(), nil
}

// RemoveResult reports a remove.
type RemoveResult struct {
	Removed []catalog.Removed `json:"removed"`
	DryRun  bool              `json:"dry_run"`
	Retries int               `json:"retries"`
}

// Remove takes the image(s) target names — a fingerprint (or unique
// prefix), or an alias, meaning the latest version of each product listing
// it, on arch when arch is set — out of the catalog. The files stay until a
// prune deletes them after the grace period.
func (r *Registry) Remove(ctx context.Context, target, arch string, dryRun bool) (*RemoveResult, error) {
	res := &RemoveResult{DryRun: dryRun}
	// Resolve on the whole catalog (a fingerprint prefix must be unique
	// in it), then remove in each file holding a match.
	l, root, files, err := r.readWhole(ctx)
	if err != nil {
		return nil, err
	}
	found, err := l.Whole(root, files).Resolve(target, arch)
	if err != nil || dryRun {
		res.Removed = found
		return res, err
	}
	var keys []string
	for _, rm := range found {
		keys = append(keys, l.FileOf(rm.Product))
	}
	slices.Sort(keys)
	for _, key := range slices.Compact(keys) {
		first, err := r.readFile(ctx, l, key)
		if err != nil {
			return nil, err
		}
		var got []catalog.Removed // of the last attempt
		st, err := r.commitIn(ctx, l, key, newID(), &first, func(c *catalog.Catalog) (bool, error) {
			rs, err := c.Remove(target, arch, r.now())
			got = rs
			return err == nil, err
		})
		res.Retries += st.Retries
		if err != nil {
			return nil, err
		}
		res.Removed = append(res.Removed, got...)
		n, err := r.indexAfter(ctx, l, key, st)
		res.Retries += n
		if err != nil {
			return nil, fmt.Errorf("removed, but %s not updated (the next change to %s fixes it): %w", catalog.IndexPath, key, err)
		}
	}
	return res, nil
}
