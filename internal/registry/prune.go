package registry

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
)

// DefaultGrace is how long prune keeps a file after it left the catalog
// (or, never referenced, after it was written): Incus daemons cache a
// catalog for an hour, and a CDN adds its own time.
const DefaultGrace = 2 * time.Hour

// PruneOptions control a prune.
type PruneOptions struct {
	// Keep, when > 0, first drops all but the newest Keep versions of every
	// product from the catalog.
	Keep int
	// Grace protects files that left the catalog (or were written) less
	// than Grace ago.
	Grace time.Duration
	// DryRun reports what would be removed and deleted, changing nothing.
	DryRun bool
}

// PruneResult reports a prune.
type PruneResult struct {
	// Removed are the versions dropped from the catalog by Keep, and
	// version shells another tool's remove left (catalog.DropShells).
	Removed []catalog.Removed `json:"removed"`
	// DroppedDeltas are delta items taken out of the catalog because
	// another tool removed their base version.
	DroppedDeltas []string `json:"dropped_deltas,omitempty"`
	// Deleted are the files deleted (in a dry run: that would be).
	Deleted []string `json:"deleted"`
	// Postponed are files that were due but not deleted because the prune
	// ran out of its time window; the next prune takes them.
	Postponed []string `json:"postponed,omitempty"`
	DryRun    bool     `json:"dry_run"`
	Retries   int      `json:"retries"`
}

// Prune drops old versions (Keep) and version shells, and deletes the image
// files nothing references any more, safely with respect to clients and
// publishers in flight: it never deletes a file referenced by the catalog,
// by a live pending publish, or by any catalog revision younger than Grace.
// A file the catalog's state does not account for (another tool rewrote
// images.json) is recorded as retired now and waits the full Grace. The set it deletes is announced in the
// catalog (with a deadline) in the same conditional write that decides it,
// so a publisher reusing one of those files waits and re-checks.
func (r *Registry) Prune(ctx context.Context, opts PruneOptions) (*PruneResult, error) {
	l, _, err := r.readLayout(ctx)
	if err != nil {
		return nil, err
	}
	if l.sharded() {
		return r.pruneSharded(ctx, l, opts)
	}
	res := &PruneResult{DryRun: opts.DryRun}
	plan := func(c *catalog.Catalog, now time.Time) error {
		var err error
		if res.Removed, res.DroppedDeltas, err = tidy(c, opts.Keep, now); err != nil {
			return err
		}
		objects, err := r.listImages(ctx)
		if err != nil {
			return err
		}
		res.Deleted = c.Deletable(objects, now, opts.Grace)
		return nil
	}
	if opts.DryRun {
		c, _, err := r.readCatalogAt(ctx, catalog.ImagesPath)
		if err != nil {
			return nil, err
		}
		return res, plan(c, r.now())
	}

	id := newID()
	var deadline time.Time
	st, err := r.commitIn(ctx, l, catalog.ImagesPath, newID(), nil, func(c *catalog.Catalog) (bool, error) {
		before := c.Marshal()
		now := r.now()
		if err := plan(c, now); err != nil {
			return false, err
		}
		deadline = now.Add(PruneWindow)
		if len(res.Deleted) > 0 {
			if err := c.BeginPrune(id, res.Deleted, deadline, now); err != nil {
				return false, err
			}
		}
		return !bytes.Equal(before, c.Marshal()), nil
	})
	res.Retries += st.Retries
	if err != nil {
		return nil, err
	}
	return res, r.deleteDue(ctx, l, id, deadline, len(res.Deleted) > 0, res)
}

// tidy drops, in one catalog file, all but the newest keep versions of
// each product (keep > 0), the deltas whose base another tool removed and
// the version shells another tool's remove left.
func tidy(c *catalog.Catalog, keep int, now time.Time) (removed []catalog.Removed, dropped []string, err error) {
	if keep > 0 {
		if removed, err = c.KeepNewest(keep, now); err != nil {
			return nil, nil, err
		}
	}
	dropped = c.DropDanglingDeltas(now)
	removed = append(removed, c.DropShells(now)...)
	return removed, dropped, nil
}

// listImages lists the stored image files.
func (r *Registry) listImages(ctx context.Context) ([]catalog.Object, error) {
	objs, err := r.Store.List(ctx, catalog.ImagesDir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", catalog.ImagesDir, err)
	}
	var objects []catalog.Object
	for _, o := range objs {
		objects = append(objects, catalog.Object{Path: o.Key, ModTime: o.ModTime})
	}
	return objects, nil
}

// deleteDue deletes the files due (res.Deleted) while the prune's window
// lasts, then clears its announcement, if announced.
func (r *Registry) deleteDue(ctx context.Context, l layout, id string, deadline time.Time, announced bool, res *PruneResult) error {
	if !announced {
		return nil
	}
	due := res.Deleted
	res.Deleted = nil
	for i, path := range due {
		if !r.now().Before(deadline.Add(-clockSkew)) {
			res.Postponed = due[i:]
			break
		}
		if err := r.Store.Delete(ctx, path); err != nil {
			res.Postponed = due[i:]
			err = fmt.Errorf("delete %s: %w", path, err)
			return r.endPrune(ctx, l, id, res, err)
		}
		res.Deleted = append(res.Deleted, path)
	}
	return r.endPrune(ctx, l, id, res, nil)
}

// endPrune clears the prune's announcement and the retirement records of
// the files it deleted (in every catalog file of a sharded registry),
// then returns cause (or the commit's own error).
func (r *Registry) endPrune(ctx context.Context, l layout, id string, res *PruneResult, cause error) error {
	end := func(c *catalog.Catalog) (bool, error) {
		before := c.Marshal()
		c.EndPrune(id, res.Deleted)
		return !bytes.Equal(before, c.Marshal()), nil
	}
	st, err := r.commit(ctx, catalog.ImagesPath, newID(), nil, end)
	res.Retries += st.Retries
	if err == nil && l.sharded() && len(res.Deleted) > 0 {
		var files []*catalog.Catalog
		files, err = r.readFiles(ctx, l.n)
		for i, key := range catalog.ProductPaths(l.n) {
			if err != nil || !files[i].HasRetired(res.Deleted) {
				continue
			}
			st, err = r.commit(ctx, key, newID(), nil, end)
			res.Retries += st.Retries
		}
	}
	if cause != nil {
		return cause
	}
	if err != nil {
		return fmt.Errorf("files deleted, but the prune record was not cleared (it expires by itself): %w", err)
	}
	if l.sharded() {
		return nil // no product changed
	}
	n, _, err := r.syncIndex(ctx, l.n, catalog.ImagesPath, nil)
	res.Retries += n
	return err
}
