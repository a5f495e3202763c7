package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
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

// sum is the SHA-256 of the file as the commit wrote it ("" when not
// known).
func (st commitStats) sum() string {
	if st.Snapshot == nil {
		return ""
	}
	return st.Snapshot.sum
}

// indexAfter brings index.json up to date after commit st of catalog file
// key, when it wrote a product file.
func (r *Registry) indexAfter(ctx context.Context, l layout, key string, st commitStats) (retries int, err error) {
	if !st.Written || !slices.Contains(l.Files(), key) {
		return 0, nil
	}
	n, _, err := r.syncIndex(ctx, l, key, st.Snapshot)
	return n, err
}

// mutation changes a freshly read catalog; it reports whether anything
// changed. It may run several times (once per attempt), always on a fresh
// copy, and its error aborts the commit.
type mutation func(c *catalog.Catalog) (changed bool, err error)

// commit applies m to the current catalog file key (images.json, or a
// product file of a sharded registry) and writes the result back
// with a conditional put, re-reading and re-applying on conflict (an
// error with Written set: the file was written, not its signed form). When
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
			return st, r.sealLanded(ctx, key, c, snap.sum)
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
		w, err := r.writeCatalog(ctx, key, productFile{c}, etag)
		if w.landed {
			st.Written = true
			if w.etag != "" {
				st.Snapshot = &snapshot{etag: w.etag, sum: w.sum, cat: c}
			}
			return st, err
		}
		if err := r.retry(ctx, key, err, attempt); err != nil {
			return st, err
		}
		st.Retries++
	}
}

// sealLanded writes what accompanies catalog file key when a write whose
// reply was lost is found to have landed: c as read now, whose bytes have
// SHA-256 sum. (A file another writer changed since is signed by it.)
func (r *Registry) sealLanded(ctx context.Context, key string, c *catalog.Catalog, sum string) error {
	doc := productFile{c}
	st := doc.stamp()
	if st == nil {
		return nil
	}
	data := doc.Marshal()
	if digest.Of(data) != sum {
		return nil
	}
	return unsealedAfter(key, r.seal().follow(ctx, key, doc, data, st.Serial))
}

// unsealedAfter is the error of catalog file key written, but whose
// signed form failed with err (nil when err is).
func unsealedAfter(key string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s written, but not its signed form (the next change to it, or publish sign, repairs that): %w", key, err)
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

// stored is what a catalog write stored: whether the file landed, its new
// ETag (when the store tells it) and the SHA-256 of its bytes.
type stored struct {
	landed bool
	etag   string
	sum    string
}

// writeCatalog writes document key (a product file, the root or
// index.json) if it still has ETag etag ("": only if absent). Every
// catalog write goes through here: what must accompany each changed
// catalog file is written here (seal.go: in a signed registry the
// document is stamped, then followed by its .sjson; without a key a
// signed registry is refused). An error once the file landed (its .sjson
// failed) comes with landed set.
func (r *Registry) writeCatalog(ctx context.Context, key string, doc document, etag string) (stored, error) {
	s := r.seal()
	if err := s.check(ctx); err != nil {
		return stored{}, err
	}
	st := doc.stamp()
	if st != nil {
		s.stamp(st)
	}
	data := doc.Marshal()
	opts := store.PutOptions{IfMatch: etag, IfAbsent: etag == "", ContentType: "application/json", CacheControl: CacheControlCatalog}
	info, err := r.Store.Put(ctx, key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return stored{}, fmt.Errorf("write %s: %w", key, err)
	}
	w := stored{landed: true, etag: info.ETag, sum: digest.Of(data)}
	if st == nil {
		return w, nil
	}
	return w, unsealedAfter(key, s.follow(ctx, key, doc, data, st.Serial))
}

// syncIndex brings index.json up to date after a change of catalog file
// key: key's entry (catalog.Layout.Entry: its products and live pending
// ones, and with several files its alias claims; in a signed registry the
// file's digest) is built afresh from the file, the other entries stay as
// they are (every entry is rebuilt from its file when the index is
// missing, does not parse, lacks one or has one a signed registry does
// not write). It reads index.json BEFORE the catalog file, so what it
// builds from is at least as new as what the index it replaces was built
// from, and writes conditionally; the last writer therefore always leaves
// an index built from the latest files. It returns the index as written
// (or found up to date: then, in a signed registry, its .sjson is
// brought up to date too). known, when not nil, is the file as the
// caller's last commit wrote it: used instead of reading the file again
// while the file still has its ETag.
func (r *Registry) syncIndex(ctx context.Context, l layout, key string, known *snapshot) (retries int, ix *catalog.Index, err error) {
	fresh := map[string]*snapshot{key: known}
	return r.writeIndex(ctx, l, []string{key}, fresh)
}

// writeIndex is syncIndex for the entries of keys; fresh holds files as
// last written by this command, and gets those it signs.
func (r *Registry) writeIndex(ctx context.Context, l layout, keys []string, fresh map[string]*snapshot) (retries int, ix *catalog.Index, err error) {
	for attempt := 1; ; attempt++ {
		old, etag, err := r.readObject(ctx, catalog.IndexPath)
		if errors.Is(err, store.ErrNotFound) {
			old, etag = nil, ""
		} else if err != nil {
			return retries, nil, err
		}
		if ix, err = r.buildIndex(ctx, l, keys, old, fresh); err != nil {
			return retries, nil, err
		}
		if want := ix.Marshal(); bytes.Equal(old, want) {
			// Its signed form may lag (a writer stopped between the two).
			return retries, ix, r.seal().follow(ctx, catalog.IndexPath, indexFile{ix}, want, ix.Serial)
		}
		w, err := r.writeCatalog(ctx, catalog.IndexPath, indexFile{ix}, etag)
		if w.landed {
			return retries, ix, err
		}
		if err := r.retry(ctx, catalog.IndexPath, err, attempt); err != nil {
			return retries, nil, err
		}
		retries++
	}
}

// buildIndex builds the index from the index as read (old) with the
// entries of keys read afresh (see syncIndex).
func (r *Registry) buildIndex(ctx context.Context, l layout, keys []string, old []byte, fresh map[string]*snapshot) (*catalog.Index, error) {
	s := r.seal()
	entries := map[string]catalog.IndexEntry{}
	var stamp catalog.Stamp
	if ix, err := catalog.ParseIndex(old); err == nil {
		entries, stamp = ix.Entries(), ix.Stamp
	}
	paths := l.Files()
	if slices.ContainsFunc(paths, func(p string) bool { e, ok := entries[p]; return !ok || !s.complete(e) }) {
		keys = paths
	}
	keys = slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return !slices.Contains(paths, k) })
	files, err := r.currentFiles(ctx, l, keys, fresh)
	if err != nil {
		return nil, err
	}
	now := r.now()
	for i, p := range keys {
		entries[p] = s.entry(l.Entry(files[i].cat, p, now), files[i].sum)
	}
	ix := l.Index(entries)
	ix.Stamp = stamp
	return ix, nil
}

// currentFiles returns catalog files keys as they are now, parsed (not to
// be changed): fresh's snapshot of a file while the file still has its
// ETag, else read. In a signed registry a file never signed (or missing)
// is signed first, so that index.json names only signed files; fresh
// gets it.
func (r *Registry) currentFiles(ctx context.Context, l layout, keys []string, fresh map[string]*snapshot) ([]*snapshot, error) {
	out := make([]*snapshot, len(keys))
	err := eachOf(len(keys), func(i int) error {
		snap, err := r.currentFile(ctx, l, keys[i], fresh[keys[i]])
		out[i] = snap
		return err
	})
	for i, k := range keys {
		if out[i] != nil {
			fresh[k] = out[i]
		}
	}
	return out, err
}

// currentFile is currentFiles for one file.
func (r *Registry) currentFile(ctx context.Context, l layout, key string, known *snapshot) (*snapshot, error) {
	if snap := r.unchanged(ctx, key, known); snap != nil && snap.cat != nil {
		return snap, nil // as this command wrote it (and signed it)
	}
	snap, err := r.readSnapshot(ctx, key)
	if err != nil {
		return nil, err
	}
	c, err := snap.view(key)
	if err != nil {
		return nil, err
	}
	if unsigned, err := r.seal().unsigned(ctx, key, c); err != nil || !unsigned {
		return &snap, err
	}
	st, err := r.commitIn(ctx, l, key, newID(), &snap, func(*catalog.Catalog) (bool, error) { return true, nil })
	if err != nil {
		return nil, err
	}
	if st.Snapshot != nil {
		return st.Snapshot, nil
	}
	s, err := r.readSnapshot(ctx, key)
	if err == nil {
		_, err = s.view(key)
	}
	return &s, err
}

// eachOf runs f(0) to f(n-1), a few at a time, and joins their errors.
func eachOf(n int, f func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
