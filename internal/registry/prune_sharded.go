package registry

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
)

// pruneSharded is Prune for a sharded registry (catalog/shard.go):
//
//  1. each product file drops its old versions, shells and dangling
//     deltas in its own commit, retiring their files there;
//  2. the root decides what to delete from every file read after the
//     root (references, pending publishes and retirements of all files;
//     files nobody accounts for are retired now in the root) and
//     announces it, in one conditional write of the root;
//  3. every file is read again and what became referenced or pending
//     meanwhile is spared: a publisher writes its pending intent into its
//     file before it reads the root for announcements, so either it sees
//     the announcement or this read sees its intent.
func (r *Registry) pruneSharded(ctx context.Context, l layout, opts PruneOptions) (*PruneResult, error) {
	res := &PruneResult{DryRun: opts.DryRun}
	if opts.DryRun {
		files, err := r.readFiles(ctx, l.n)
		if err != nil {
			return nil, err
		}
		now := r.now()
		for _, c := range files {
			rm, dd, err := tidy(c, opts.Keep, now)
			if err != nil {
				return nil, err
			}
			res.Removed, res.DroppedDeltas = append(res.Removed, rm...), append(res.DroppedDeltas, dd...)
		}
		root, _, err := r.readCatalogAt(ctx, catalog.ImagesPath)
		if err != nil {
			return nil, err
		}
		objects, err := r.listImages(ctx)
		if err != nil {
			return nil, err
		}
		res.Deleted = root.Deletable(objects, now, opts.Grace, files...)
		return res, nil
	}

	// 1.
	for _, key := range catalog.ProductPaths(l.n) {
		var rm []catalog.Removed
		var dd []string
		st, err := r.commit(ctx, key, newID(), nil, func(c *catalog.Catalog) (bool, error) {
			before := c.Marshal()
			var err error
			rm, dd, err = tidy(c, opts.Keep, r.now())
			return !bytes.Equal(before, c.Marshal()), err
		})
		res.Retries += st.Retries
		if err != nil {
			return nil, err
		}
		res.Removed, res.DroppedDeltas = append(res.Removed, rm...), append(res.DroppedDeltas, dd...)
		if len(rm) > 0 {
			n, _, err := r.syncIndex(ctx, l.n, key, st.Snapshot)
			res.Retries += n
			if err != nil {
				return nil, err
			}
		}
	}

	// 2.
	id := newID()
	var deadline time.Time
	st, err := r.commit(ctx, catalog.ImagesPath, newID(), nil, func(root *catalog.Catalog) (bool, error) {
		before := root.Marshal()
		files, err := r.readFiles(ctx, l.n)
		if err != nil {
			return false, err
		}
		objects, err := r.listImages(ctx)
		if err != nil {
			return false, err
		}
		now := r.now()
		res.Deleted = root.Deletable(objects, now, opts.Grace, files...)
		deadline = now.Add(PruneWindow)
		if len(res.Deleted) > 0 {
			if err := root.BeginPrune(id, res.Deleted, deadline, now); err != nil {
				return false, err
			}
		}
		return !bytes.Equal(before, root.Marshal()), nil
	})
	res.Retries += st.Retries
	if err != nil {
		return nil, err
	}

	// 3.
	announced := len(res.Deleted) > 0
	if announced {
		files, err := r.readFiles(ctx, l.n)
		if err != nil {
			due := res.Deleted
			res.Deleted = nil
			res.Postponed = due
			return res, r.endPrune(ctx, l, id, res, err)
		}
		now := r.now()
		used := map[string]bool{}
		for _, c := range files {
			maps.Copy(used, c.InUse(now))
		}
		res.Deleted = slices.DeleteFunc(res.Deleted, func(p string) bool { return used[p] })
	}
	return res, r.deleteDue(ctx, l, id, deadline, announced, res)
}
