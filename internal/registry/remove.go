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
	// Breaks says, for a forced remove, the published consumers' relations
	// it leaves without a provider.
	Breaks []string `json:"breaks,omitempty"`
}

// RemoveOptions control a remove.
type RemoveOptions struct {
	// Arch, when set, removes an alias's image on this architecture only.
	Arch string
	// DryRun reports what would be removed, changing nothing.
	DryRun bool
	// Force removes the last version a published consumer's relation
	// allows (RemoveResult.Breaks says what breaks); without it such a
	// remove is refused (relations.BreakError).
	Force bool
}

// Remove takes the image(s) target names — a fingerprint (or unique
// prefix), or an alias, meaning the latest version of each product listing
// it, on arch when arch is set — out of the catalog. The files stay until a
// prune deletes them after the grace period. Taking away the last
// provider a published consumer's relation allows needs opts.Force.
func (r *Registry) Remove(ctx context.Context, target string, opts RemoveOptions) (*RemoveResult, error) {
	arch, dryRun := opts.Arch, opts.DryRun
	res := &RemoveResult{DryRun: dryRun}
	// Resolve on the whole catalog (a fingerprint prefix must be unique
	// in it), then remove in each file holding a match.
	l, root, files, err := r.readWhole(ctx)
	if err != nil {
		return nil, err
	}
	whole := l.Whole(root, files)
	found, err := whole.Resolve(target, arch)
	if err != nil {
		return res, err
	}
	res.Removed = found
	if res.Breaks, err = checkBreaks(whole, "remove "+target, opts.Force, func(c *catalog.Catalog) error {
		_, err := c.Remove(target, arch, r.now())
		return err
	}); err != nil || dryRun {
		return res, err
	}
	res.Removed = nil
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
