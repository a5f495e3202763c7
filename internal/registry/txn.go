package registry

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
)

// txn is one change of a catalog file that references files it stores
// first: Publish and Copy are plan → upload → commit over it.
//
//  1. announce: record a pending intent in the file (it protects the
//     files from prune, and counts its product as present for
//     index.json), bring index.json up to date (the product and, with
//     several files, the intent's alias claims), check the claims once the
//     index carries them, and wait while a live prune may delete one of
//     the files;
//  2. upload: store each file, checked, announcing right before the first
//     one becomes visible (store.PutOptions.BeforeCommit); a file found
//     stored before the announcement is checked again after it (settle),
//     as a prune may have taken it meanwhile;
//  3. commit: apply the change and drop the intent in one conditional
//     write, then bring index.json up to date unless the file's entry is
//     what the announcement wrote;
//  4. abandon, on failure: drop the intent (best effort: it expires).
//
// Before the commit nothing references the files, so a change stopped at
// any point leaves a valid registry.
type txn struct {
	r   *Registry
	l   layout
	key string // the catalog file changed
	// intent is the pending record (its Expires set when announced).
	intent catalog.Pending
	// fits, when set, checks at the announcement that the change still
	// fits the file as it is then.
	fits func(c *catalog.Catalog) error
	// claimed, when set, checks the intent's claims against the other
	// files once index.json (ix) carries them.
	claimed func(ctx context.Context, ix *catalog.Index) error

	first     *snapshot // the file as planned from, then as announced
	announced bool
	committed bool
	indexed   catalog.IndexEntry // key's entry as the announcement wrote it
	early     []upload           // found stored before the announcement
	retries   int                // catalog writes lost to other writers
}

// begin starts a change of file key (as read: snap) that stores paths for
// product, claiming claims. When key does not exist yet (a new registry,
// or a product file never written), a store ignoring conditional writes
// is refused before anything is sent.
func (r *Registry) begin(ctx context.Context, l layout, key string, snap snapshot, product string, paths, claims []string) (*txn, error) {
	if err := r.seal().check(ctx); err != nil {
		return nil, err // before a byte is sent
	}
	if snap.etag == "" {
		if err := r.probeConditionalWrites(ctx); err != nil {
			return nil, err
		}
	}
	return &txn{r: r, l: l, key: key, first: &snap,
		intent: catalog.Pending{ID: newID(), Product: product, Paths: paths, Aliases: claims}}, nil
}

// announce records the intent, brings the index up to date, checks the
// claims and waits out a prune; once announced it does nothing.
func (t *txn) announce(ctx context.Context) error {
	if t.announced {
		return nil
	}
	st, err := t.r.commitIn(ctx, t.l, t.key, newID(), t.first, func(c *catalog.Catalog) (bool, error) {
		if t.fits != nil {
			if err := t.fits(c); err != nil {
				return false, err
			}
		}
		p := t.intent
		p.Expires = t.r.now().Add(PendingLease)
		return true, c.AddPending(p)
	})
	t.retries += st.Retries
	if err != nil {
		return fmt.Errorf("commit %s: %w", t.key, err)
	}
	t.announced, t.first = true, st.Snapshot
	// index.json lists the pending product from now on (a new registry
	// killed here still has both files).
	n, ix, err := t.r.syncIndex(ctx, t.l, t.key, st.Snapshot)
	t.retries += n
	if err != nil {
		return err
	}
	t.indexed, _ = ix.EntryByPath(t.key)
	if t.claimed != nil {
		// The index carries this change's claims now: one another file
		// also claims was claimed first.
		if err := t.claimed(ctx, ix); err != nil {
			return err
		}
	}
	// Once any prune that may delete these files is over.
	return t.r.waitForPrune(ctx, announcements(t.key, st), t.intent.Paths)
}

// upload stores u (unless stored already), announcing right before it
// becomes visible; it reports whether bytes were sent.
func (t *txn) upload(ctx context.Context, u upload, progress func(string, int64, int64)) (bool, error) {
	sent, err := t.r.put(ctx, u, progress, t.announce)
	if err == nil && !sent && !t.announced {
		t.early = append(t.early, u)
	}
	return sent, err
}

// settle announces, if no upload did, and checks again the files found
// stored before the announcement: a prune may have deleted one since, and
// none can now. It returns, by path, whether each was sent again.
func (t *txn) settle(ctx context.Context, progress func(string, int64, int64)) (map[string]bool, error) {
	if err := t.announce(ctx); err != nil {
		return nil, err
	}
	resent := map[string]bool{}
	for _, u := range t.early {
		sent, err := t.r.put(ctx, u, progress, nil)
		if err != nil {
			return nil, err
		}
		resent[u.key] = sent
	}
	return resent, nil
}

// commit applies change to the file and drops the intent in one
// conditional write (starting from the file as announced: if another
// writer changed it meanwhile, the commit reads it again), then brings
// index.json up to date. A failed commit is abandoned; after a failed
// index update t.committed tells that the change is in.
func (t *txn) commit(ctx context.Context, change func(c *catalog.Catalog) error) (commitStats, error) {
	st, err := t.r.commitIn(ctx, t.l, t.key, newID(), t.r.unchanged(ctx, t.key, t.first), func(c *catalog.Catalog) (bool, error) {
		if err := change(c); err != nil {
			return false, err
		}
		c.RemovePending(t.intent.ID)
		return true, nil
	})
	t.retries += st.Retries
	if !st.Written {
		return st, t.abandon(ctx, fmt.Errorf("commit %s: %w", t.key, err))
	}
	t.committed = true
	if err != nil {
		return st, err // written, not signed
	}
	if t.indexed.Same(t.r.seal().entry(t.l.Entry(st.Catalog, t.key, t.r.now()), st.sum())) {
		return st, nil // what index.json says of the file did not move
	}
	n, _, err := t.r.syncIndex(ctx, t.l, t.key, st.Snapshot)
	t.retries += n
	if err != nil {
		return st, fmt.Errorf("%s not updated (the next change to %s fixes it): %w", catalog.IndexPath, t.key, err)
	}
	return st, nil
}

// abandon drops the intent of a failed change, once announced (best
// effort: an intent left behind simply expires), and returns cause.
func (t *txn) abandon(ctx context.Context, cause error) error {
	if !t.announced || ctx.Err() != nil {
		return cause
	}
	_, _ = t.r.commit(ctx, t.key, newID(), nil, func(c *catalog.Catalog) (bool, error) {
		before := len(c.LivePending(t.r.now()))
		c.RemovePending(t.intent.ID)
		return len(c.LivePending(t.r.now())) != before, nil
	})
	_, _, _ = t.r.syncIndex(ctx, t.l, t.key, nil)
	return cause
}

// waitForPrune waits while a live prune lists any of paths as deletable,
// so that a file a change reuses cannot vanish under it. c is the latest
// images.json the caller has (nil: read it); it is re-read while waiting.
func (r *Registry) waitForPrune(ctx context.Context, c *catalog.Catalog, paths []string) error {
	for attempt := 1; ; attempt++ {
		if attempt > 1 || c == nil {
			var err error
			if c, _, err = r.readCatalogAt(ctx, catalog.ImagesPath); err != nil {
				return err
			}
		}
		now := r.now()
		pr := c.LivePruning(now.Add(-clockSkew))
		if pr == nil || !slices.ContainsFunc(paths, func(p string) bool { return slices.Contains(pr.Paths, p) }) {
			return nil
		}
		t := time.NewTimer(min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
