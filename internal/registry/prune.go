package registry

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
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
	// Force drops, with Keep, the last version a published consumer's
	// relation allows (PruneResult.Breaks says what breaks); without it
	// such a prune is refused (relations.BreakError) before anything
	// changes.
	Force bool
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
	// Breaks says, for a forced prune, the published consumers'
	// relations it leaves without a provider.
	Breaks []string `json:"breaks,omitempty"`
}

// Prune drops old versions (Keep) and version shells, and deletes the image
// files nothing references any more, safely with respect to clients and
// publishers in flight: it never deletes a file referenced by the catalog,
// by a live pending publish, or by any catalog revision younger than Grace.
// A file the catalog's state does not account for (another tool rewrote
// the catalog) is recorded as retired now and waits the full Grace.
//
//  1. each product file drops its old versions, shells and dangling
//     deltas in its own commit, retiring their files there;
//  2. the root (images.json) decides what to delete from every product
//     file read after it (references, pending publishes and retirements of
//     all files; files nobody accounts for are retired now in the root)
//     and announces it, with a deadline, in one conditional write of the
//     root (with one file, the product file is the root: the catalog
//     decided from is the one written);
//  3. every product file is read again and what became referenced or
//     pending meanwhile is spared: a publisher writes its pending intent
//     into its file before it reads the root for announcements, so either
//     it sees the announcement (and waits, then checks the file again) or
//     this read sees its intent.
func (r *Registry) Prune(ctx context.Context, opts PruneOptions) (*PruneResult, error) {
	l, root, err := r.readLayout(ctx)
	if err != nil {
		return nil, err
	}
	res := &PruneResult{DryRun: opts.DryRun}
	if res.Breaks, err = r.pruneBreaks(ctx, opts.Keep, opts.Force, r.now()); err != nil {
		return nil, err
	}
	if opts.DryRun {
		return res, r.planPrune(ctx, l, root, opts, res)
	}
	// 1.
	for _, key := range l.Files() {
		if err := r.tidyFile(ctx, l, key, opts.Keep, res); err != nil {
			return nil, err
		}
	}
	// 2.
	id := newID()
	var deadline time.Time
	st, err := r.commitIn(ctx, l, catalog.ImagesPath, newID(), nil, func(root *catalog.Catalog) (bool, error) {
		before := root.Marshal()
		files, err := r.readFiles(ctx, l, root)
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
	n, err := r.indexAfter(ctx, l, catalog.ImagesPath, st)
	res.Retries += n
	if err != nil {
		return nil, err
	}
	if len(res.Deleted) == 0 {
		return res, nil
	}
	// 3.
	if err := r.spare(ctx, l, res); err != nil {
		due := res.Deleted
		res.Deleted, res.Postponed = nil, due
		return res, r.endPrune(ctx, l, id, res, err)
	}
	return res, r.deleteDue(ctx, l, id, deadline, res)
}

// planPrune is Prune's dry run: what it would drop and delete now.
func (r *Registry) planPrune(ctx context.Context, l layout, root *catalog.Catalog, opts PruneOptions, res *PruneResult) error {
	files, err := r.readFiles(ctx, l, root)
	if err != nil {
		return err
	}
	now := r.now()
	for _, c := range files {
		rm, dd, err := tidy(c, opts.Keep, now)
		if err != nil {
			return err
		}
		res.Removed, res.DroppedDeltas = append(res.Removed, rm...), append(res.DroppedDeltas, dd...)
	}
	objects, err := r.listImages(ctx)
	if err != nil {
		return err
	}
	res.Deleted = root.Deletable(objects, now, opts.Grace, files...)
	return nil
}

// tidyFile is step 1 of Prune for product file key; index.json follows
// when versions left.
func (r *Registry) tidyFile(ctx context.Context, l layout, key string, keep int, res *PruneResult) error {
	var rm []catalog.Removed
	var dd []string
	st, err := r.commitIn(ctx, l, key, newID(), nil, func(c *catalog.Catalog) (bool, error) {
		before := c.Marshal()
		var err error
		rm, dd, err = tidy(c, keep, r.now())
		return !bytes.Equal(before, c.Marshal()), err
	})
	res.Retries += st.Retries
	if err != nil {
		return err
	}
	res.Removed, res.DroppedDeltas = append(res.Removed, rm...), append(res.DroppedDeltas, dd...)
	n, err := r.indexAfter(ctx, l, key, st)
	res.Retries += n
	return err
}

// spare is step 3 of Prune: it takes out of res.Deleted what a product
// file, read now, references or protects.
func (r *Registry) spare(ctx context.Context, l layout, res *PruneResult) error {
	files, err := r.readFiles(ctx, l, nil)
	if err != nil {
		return err
	}
	now := r.now()
	used := map[string]bool{}
	for _, c := range files {
		maps.Copy(used, c.InUse(now))
	}
	res.Deleted = slices.DeleteFunc(res.Deleted, func(p string) bool { return used[p] })
	return nil
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
// lasts, then clears its announcement.
func (r *Registry) deleteDue(ctx context.Context, l layout, id string, deadline time.Time, res *PruneResult) error {
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

// endPrune clears the prune's announcement in the root and the
// retirement records of the files it deleted (in every product file),
// then returns cause (or the commit's own error).
func (r *Registry) endPrune(ctx context.Context, l layout, id string, res *PruneResult, cause error) error {
	end := func(c *catalog.Catalog) (bool, error) {
		before := c.Marshal()
		c.EndPrune(id, res.Deleted)
		return !bytes.Equal(before, c.Marshal()), nil
	}
	commit := func(key string) error {
		st, err := r.commitIn(ctx, l, key, newID(), nil, end)
		res.Retries += st.Retries
		if err != nil {
			return err
		}
		n, err := r.indexAfter(ctx, l, key, st)
		res.Retries += n
		return err
	}
	err := commit(catalog.ImagesPath)
	if err == nil && len(res.Deleted) > 0 {
		// (With one file, the root just forgot them.)
		var files []*catalog.Catalog
		files, err = r.readFiles(ctx, l, nil)
		for i, key := range l.Files() {
			if err != nil || !files[i].HasRetired(res.Deleted) {
				continue
			}
			err = commit(key)
		}
	}
	if cause != nil {
		return cause
	}
	if err != nil {
		return fmt.Errorf("files deleted, but the prune record was not cleared (it expires by itself): %w", err)
	}
	return nil
}
