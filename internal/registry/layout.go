package registry

import (
	"context"
	"errors"
	"sync"

	"github.com/incus-appliance/registry/internal/catalog"
)

// layout is how the registry's catalog is stored: images.json alone
// (n = 1), or images.json as the root of n product files
// (catalog/shard.go).
type layout struct {
	n    int
	root snapshot
}

// sharded reports whether products live in their own files.
func (l layout) sharded() bool { return l.n > 1 }

// fileOf is the catalog file holding productKey.
func (l layout) fileOf(productKey string) string { return catalog.ShardOf(productKey, l.n) }

// readLayout reads images.json and the number of product files it names.
func (r *Registry) readLayout(ctx context.Context) (layout, *catalog.Catalog, error) {
	snap, err := r.readSnapshot(ctx, catalog.ImagesPath)
	if err != nil {
		return layout{}, nil, err
	}
	c, err := snap.parse(catalog.ImagesPath)
	if err != nil {
		return layout{}, nil, err
	}
	return layout{n: c.Shards(), root: snap}, c, nil
}

// ensureLayout returns the layout, first creating the root of a sharded
// registry when the store has no catalog and r.Shards asks for more than
// one file (only the layout it would have when create is false). Asking
// an existing registry for another count is an error.
func (r *Registry) ensureLayout(ctx context.Context, create bool) (layout, error) {
	l, _, err := r.readLayout(ctx)
	if err != nil {
		return l, err
	}
	want := r.Shards
	switch {
	case want == 0 || want == l.n:
		return l, nil
	case l.root.etag != "":
		return l, catalog.ShardCountFixed(l.n)
	}
	if err := catalog.CheckShards(want); err != nil {
		return l, err
	}
	if !create {
		l.n = want
		return l, nil
	}
	// Created here or by a concurrent publisher: either way it has want.
	_, err = r.commit(ctx, catalog.ImagesPath, newID(), nil, func(c *catalog.Catalog) (bool, error) {
		if c.Shards() == want {
			return false, nil
		}
		return true, c.SetShards(want)
	})
	if err != nil {
		return l, err
	}
	l, _, err = r.readLayout(ctx)
	return l, err
}

// readFiles reads every product file of a sharded registry (a missing
// one is empty), a few at a time.
func (r *Registry) readFiles(ctx context.Context, n int) ([]*catalog.Catalog, error) {
	paths := catalog.ProductPaths(n)
	out := make([]*catalog.Catalog, len(paths))
	errs := make([]error, len(paths))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], _, errs[i] = r.readCatalogAt(ctx, p)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// readCatalogAt returns one catalog file and its ETag; a missing file is
// an empty catalog with ETag "".
func (r *Registry) readCatalogAt(ctx context.Context, key string) (*catalog.Catalog, string, error) {
	s, err := r.readSnapshot(ctx, key)
	if err != nil {
		return nil, "", err
	}
	c, err := s.parse(key)
	return c, s.etag, err
}

// readCatalog returns the whole catalog and images.json's ETag ("" when
// there is no registry). For a sharded registry it is a read-only view
// joining every product file (catalog.MergeShards).
func (r *Registry) readCatalog(ctx context.Context) (*catalog.Catalog, string, error) {
	l, root, err := r.readLayout(ctx)
	if err != nil || !l.sharded() {
		return root, l.root.etag, err
	}
	files, err := r.readFiles(ctx, l.n)
	if err != nil {
		return nil, "", err
	}
	return catalog.MergeShards(root, files), l.root.etag, nil
}

// errLayoutChanged: a registry read as one catalog file was given several
// while the command ran.
var errLayoutChanged = errors.New("the registry was created with several catalog files while this command ran: run it again")

// commitIn is commit for a change to catalog file key of layout l: in a
// registry read as one file, it refuses to write into what has become the
// root of a sharded registry (products there would be invisible).
func (r *Registry) commitIn(ctx context.Context, l layout, key, id string, first *snapshot, m mutation) (commitStats, error) {
	if l.sharded() {
		return r.commit(ctx, key, id, first, m)
	}
	return r.commit(ctx, key, id, first, func(c *catalog.Catalog) (bool, error) {
		if c.Shards() > 1 {
			return false, errLayoutChanged
		}
		return m(c)
	})
}

// unchanged returns s when catalog file key still has s's ETag (one HEAD
// instead of reading and parsing the file again), else nil.
func (r *Registry) unchanged(ctx context.Context, key string, s *snapshot) *snapshot {
	if s == nil {
		return nil
	}
	if info, err := r.Store.Stat(ctx, key); err == nil && info.ETag == s.etag {
		return s
	}
	return nil
}

// readFile returns catalog file key as it stands: in a one-file registry
// the images.json the layout was read from, else read now.
func (r *Registry) readFile(ctx context.Context, l layout, key string) (snapshot, error) {
	if !l.sharded() {
		return l.root, nil
	}
	return r.readSnapshot(ctx, key)
}

// announcements is what waitForPrune starts from after a commit to a
// product file: that file itself when it is images.json, else nil (prunes
// announce themselves in the root, which is read then).
func (l layout) announcements(st commitStats) *catalog.Catalog {
	if l.sharded() {
		return nil
	}
	return st.Catalog
}
