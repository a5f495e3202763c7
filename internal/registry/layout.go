package registry

import (
	"context"
	"errors"

	"github.com/incus-appliance/registry/internal/catalog"
)

// layout is how the registry's catalog is stored (catalog.Layout: its
// product files, where a product lives, what index.json says of a file)
// with its root, images.json, as read. With one file the root is also the
// only product file: reading that product file is the root already read,
// and a commit to it is a commit to the root.
type layout struct {
	catalog.Layout
	root snapshot
}

// readLayout reads images.json and the layout it names.
func (r *Registry) readLayout(ctx context.Context) (layout, *catalog.Catalog, error) {
	snap, err := r.readSnapshot(ctx, catalog.ImagesPath)
	if err != nil {
		return layout{}, nil, err
	}
	c, err := snap.parse(catalog.ImagesPath)
	if err != nil {
		return layout{}, nil, err
	}
	return layout{Layout: c.Layout(), root: snap}, c, nil
}

// ensureLayout returns the layout, first creating the root of a registry
// of several files when the store has no catalog and r.Shards asks for
// more than one (only the layout it would have when create is false).
// Asking an existing registry for another count is an error.
func (r *Registry) ensureLayout(ctx context.Context, create bool) (layout, error) {
	l, _, err := r.readLayout(ctx)
	if err != nil {
		return l, err
	}
	want := catalog.Layout(r.Shards)
	switch {
	case r.Shards == 0 || want == l.Layout:
		return l, nil
	case l.root.etag != "":
		return l, catalog.ShardCountFixed(l.Count())
	}
	if err := catalog.CheckShards(r.Shards); err != nil {
		return l, err
	}
	if !create {
		l.Layout = want
		return l, nil
	}
	// Created here or by a concurrent publisher: either way it has want.
	_, err = r.commit(ctx, catalog.ImagesPath, newID(), nil, func(c *catalog.Catalog) (bool, error) {
		if c.Layout() == want {
			return false, nil
		}
		return true, c.SetShards(r.Shards)
	})
	if err != nil {
		return l, err
	}
	l, _, err = r.readLayout(ctx)
	return l, err
}

// readFile returns product file key as it stands: the root the layout was
// read from when key is the root, else read now.
func (r *Registry) readFile(ctx context.Context, l layout, key string) (snapshot, error) {
	if key == catalog.ImagesPath {
		return l.root, nil
	}
	return r.readSnapshot(ctx, key)
}

// readFiles reads every product file (a missing one is empty), a few at a
// time, in Files' order; root, when given, stands for images.json.
func (r *Registry) readFiles(ctx context.Context, l layout, root *catalog.Catalog) ([]*catalog.Catalog, error) {
	paths := l.Files()
	out := make([]*catalog.Catalog, len(paths))
	err := eachOf(len(paths), func(i int) error {
		if paths[i] == catalog.ImagesPath && root != nil {
			out[i] = root
			return nil
		}
		var err error
		out[i], _, err = r.readCatalogAt(ctx, paths[i])
		return err
	})
	return out, err
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

// readWhole returns the layout, the root and the product files.
func (r *Registry) readWhole(ctx context.Context) (layout, *catalog.Catalog, []*catalog.Catalog, error) {
	l, root, err := r.readLayout(ctx)
	if err != nil {
		return l, nil, nil, err
	}
	files, err := r.readFiles(ctx, l, root)
	return l, root, files, err
}

// readCatalog returns the whole catalog (catalog.Layout.Whole: a
// read-only view joining every product file when there are several) and
// images.json's ETag ("" when there is no registry).
func (r *Registry) readCatalog(ctx context.Context) (*catalog.Catalog, string, error) {
	l, root, files, err := r.readWhole(ctx)
	if err != nil {
		return nil, "", err
	}
	return l.Whole(root, files), l.root.etag, nil
}

// errLayoutChanged: a registry read as one catalog file was given several
// while the command ran.
var errLayoutChanged = errors.New("the registry was created with several catalog files while this command ran: run it again")

// commitIn is commit for a change to catalog file key of layout l: a
// change to the root refuses to write into a root whose layout is no
// longer l (products written into what has become the root of several
// files would be invisible).
func (r *Registry) commitIn(ctx context.Context, l layout, key, id string, first *snapshot, m mutation) (commitStats, error) {
	if key != catalog.ImagesPath {
		return r.commit(ctx, key, id, first, m)
	}
	return r.commit(ctx, key, id, first, func(c *catalog.Catalog) (bool, error) {
		if c.Layout() != l.Layout {
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

// announcements is what waitForPrune starts from after a commit to
// product file key: that file itself when it is the root (where prunes
// announce themselves), else nil (the root is read then).
func announcements(key string, st commitStats) *catalog.Catalog {
	if key == catalog.ImagesPath {
		return st.Catalog
	}
	return nil
}
