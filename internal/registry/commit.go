package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
)

// ErrTooManyConflicts is returned when a commit lost the race MaxAttempts
// times in a row.
var ErrTooManyConflicts = errors.New("too many concurrent catalog updates")

// commitStats tells how a commit went.
type commitStats struct {
	// Written is true when this commit wrote the catalog.
	Written bool
	// Retries counts attempts lost to concurrent writers.
	Retries int
	// Catalog is the catalog as written (or as read, when unchanged); the
	// caller must not change it.
	Catalog *catalog.Catalog
	// Snapshot is the file as this commit wrote it, when the store told its
	// new ETag: the next commit or index update of the same publish can
	// start from it instead of reading and parsing the file again.
	Snapshot *snapshot
}

// mutation changes a freshly read catalog; it reports whether anything
// changed. It may run several times (once per attempt), always on a fresh
// copy, and its error aborts the commit.
type mutation func(c *catalog.Catalog) (changed bool, err error)

// commit applies m to the current catalog file key (images.json, or a
// product file of a sharded registry) and writes the result back
// with a conditional put, re-reading and re-applying on conflict. When
// first is not nil, the first attempt starts from it instead of reading
// again (the caller has just read the catalog). The
// commit id recorded in the catalog makes a retry after a lost response
// (the write landed, the reply did not) end in success instead of a false
// conflict.
func (r *Registry) commit(ctx context.Context, key, id string, first *snapshot, m mutation) (commitStats, error) {
	var st commitStats
	for attempt := 1; ; attempt++ {
		snap, err := r.readSnapshotOr(ctx, key, first)
		first = nil
		if err != nil {
			return st, err
		}
		c, err := snap.parse(key)
		if err != nil {
			return st, err
		}
		etag := snap.etag
		if c.HasCommit(id) {
			st.Written, st.Catalog = true, c
			return st, nil
		}
		changed, err := m(c)
		if err != nil {
			return st, err
		}
		st.Catalog = c
		if !changed {
			return st, nil
		}
		if etag == "" {
			if err := r.probeConditionalWrites(ctx); err != nil {
				return st, err
			}
		}
		c.RecordCommit(id, r.now())
		info, err := r.writeCatalog(ctx, key, c.Marshal(), etag)
		if err == nil {
			st.Written = true
			if info.ETag != "" {
				st.Snapshot = &snapshot{etag: info.ETag, cat: c}
			}
			return st, nil
		}
		if err := r.retry(ctx, key, err, attempt); err != nil {
			return st, err
		}
		st.Retries++
	}
}

// retry decides what follows a conditional write of catalog file key
// that failed with err on attempt n: an error to give up with, or nil
// after the backoff when the write lost to another writer and may be
// tried again.
func (r *Registry) retry(ctx context.Context, key string, err error, n int) error {
	if !isConflict(err) {
		return err
	}
	if n >= r.maxAttempts() {
		return fmt.Errorf("write %s: %w (gave up after %d attempts)", key, ErrTooManyConflicts, n)
	}
	return r.backoff(ctx, n)
}

func (r *Registry) maxAttempts() int {
	if r.MaxAttempts == 0 {
		return DefaultMaxAttempts
	}
	return r.MaxAttempts
}

// readSnapshotOr returns *s when given, else reads catalog file key.
func (r *Registry) readSnapshotOr(ctx context.Context, key string, s *snapshot) (snapshot, error) {
	if s != nil {
		return *s, nil
	}
	return r.readSnapshot(ctx, key)
}

// isConflict reports whether a conditional write lost to another writer:
// the ETag moved, or the object appeared/disappeared under us.
func isConflict(err error) bool {
	return errors.Is(err, store.ErrPreconditionFailed) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict)
}

// writeCatalog writes catalog file key (a product file, the root or
// index.json) if it still has ETag etag ("": only if absent). Every
// catalog write goes through here: what must accompany each changed
// catalog file is written here.
func (r *Registry) writeCatalog(ctx context.Context, key string, data []byte, etag string) (store.ObjectInfo, error) {
	opts := store.PutOptions{IfMatch: etag, IfAbsent: etag == "", ContentType: "application/json", CacheControl: CacheControlCatalog}
	info, err := r.Store.Put(ctx, key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return info, fmt.Errorf("write %s: %w", key, err)
	}
	return info, nil
}

// syncIndex brings index.json up to date after a change of catalog file
// key: key's entry (catalog.Layout.Entry: its products and live pending
// ones, and with several files its alias claims) is built afresh from the
// file, the other entries stay as they are (every entry is rebuilt from
// its file when the index is missing, does not parse or lacks one). It
// reads index.json BEFORE the catalog file, so what it builds from is at
// least as new as what the index it replaces was built from, and writes
// conditionally; the last writer therefore always leaves an index built
// from the latest files. It returns the index as written (or found up to
// date). known, when not nil, is the file as the caller's last commit
// wrote it: used instead of reading the file again while the file still
// has its ETag.
func (r *Registry) syncIndex(ctx context.Context, l layout, key string, known *snapshot) (retries int, ix *catalog.Index, err error) {
	for attempt := 1; ; attempt++ {
		old, etag, err := r.readObject(ctx, catalog.IndexPath)
		if errors.Is(err, store.ErrNotFound) {
			old, etag = nil, ""
		} else if err != nil {
			return retries, nil, err
		}
		if ix, err = r.buildIndex(ctx, l, key, old, known); err != nil {
			return retries, nil, err
		}
		want := ix.Marshal()
		if bytes.Equal(old, want) {
			return retries, ix, nil
		}
		_, err = r.writeCatalog(ctx, catalog.IndexPath, want, etag)
		if err == nil {
			return retries, ix, nil
		}
		if err := r.retry(ctx, catalog.IndexPath, err, attempt); err != nil {
			return retries, nil, err
		}
		retries++
	}
}

// buildIndex builds the index from the index as read (old) with file
// key's entry read afresh (see syncIndex).
func (r *Registry) buildIndex(ctx context.Context, l layout, key string, old []byte, known *snapshot) (*catalog.Index, error) {
	now := r.now()
	entries := map[string]catalog.IndexEntry{}
	if ix, err := catalog.ParseIndex(old); err == nil {
		entries = ix.Entries()
	}
	paths := l.Files()
	if slices.ContainsFunc(paths, func(p string) bool { _, ok := entries[p]; return !ok }) {
		files, err := r.readFiles(ctx, l, nil)
		if err != nil {
			return nil, err
		}
		for i, p := range paths {
			entries[p] = l.Entry(files[i], p, now)
		}
	} else if slices.Contains(paths, key) {
		c, err := r.currentFile(ctx, key, known)
		if err != nil {
			return nil, err
		}
		entries[key] = l.Entry(c, key, now)
	}
	return l.Index(entries), nil
}

// currentFile returns catalog file key as it is now (not to be changed):
// known's catalog when the file still has known's ETag, else read.
func (r *Registry) currentFile(ctx context.Context, key string, known *snapshot) (*catalog.Catalog, error) {
	if s := r.unchanged(ctx, key, known); s != nil && s.cat != nil {
		return s.cat, nil
	}
	c, _, err := r.readCatalogAt(ctx, key)
	return c, err
}
