package registry

import (
	"context"
	"fmt"

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
	if dryRun {
		c, _, err := r.readCatalog(ctx)
		if err != nil {
			return nil, err
		}
		res.Removed, err = c.Resolve(target, arch)
		return res, err
	}
	st, err := r.commit(ctx, newID(), nil, func(c *catalog.Catalog) (bool, error) {
		rs, err := c.Remove(target, arch, r.now())
		res.Removed = rs
		return err == nil, err
	})
	res.Retries = st.Retries
	if err != nil {
		return nil, err
	}
	n, err := r.syncIndex(ctx)
	res.Retries += n
	if err != nil {
		return nil, fmt.Errorf("removed, but %s not updated (the next publish fixes it): %w", catalog.IndexPath, err)
	}
	return res, nil
}
