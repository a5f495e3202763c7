package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
)

// CopyRequest commits whole versions taken from another catalog (a
// mirror), with their files streamed from Open.
type CopyRequest struct {
	// Copies are the versions, by product then oldest first.
	Copies []catalog.VersionCopy
	// Open streams a file of the source, named by its item path. The
	// registry checks its size and sha256 against the item while storing it.
	Open func(ctx context.Context, path string) (io.ReadCloser, error)
	// DryRun reports what would be copied, writing nothing.
	DryRun bool
	// Progress, when set, is called while a file uploads.
	Progress func(key string, done, total int64)
}

// CopyResult reports one version of a copy.
type CopyResult struct {
	Product string `json:"product"`
	Version string `json:"version"`
	// Status is "copied", "unchanged" or "failed" (in a dry run "copied"
	// means would be).
	Status string       `json:"status"`
	Error  string       `json:"error,omitempty"`
	Files  []FileResult `json:"files,omitempty"`
	// DroppedDeltas are delta items left out: their base version is not in
	// the registry.
	DroppedDeltas []string `json:"dropped_deltas,omitempty"`
}

// Copy commits the versions of req the registry lacks, the way Publish
// commits an image: check them against the current catalog; record one
// pending intent for their files; stream each file in (skipped when stored
// with the right size and digest), checked against the item's size and
// sha256; then one conditional commit merging every version whose files all
// arrived, and index.json brought up to date. A version that does not fit
// (a product-key or alias clash, different content under its key) or
// whose file is wrong or unreadable fails alone, with its error; the rest
// goes on. Nothing is referenced before it is stored and checked.
//
// In a sharded registry each catalog file's versions go through these
// steps in turn, and a version whose aliases another file has fails.
func (r *Registry) Copy(ctx context.Context, req CopyRequest) ([]CopyResult, int, error) {
	l, err := r.ensureLayout(ctx, !req.DryRun)
	if err != nil {
		return nil, 0, err
	}
	groups := map[string][]int{}
	for i, vc := range req.Copies {
		k := l.fileOf(vc.Product)
		groups[k] = append(groups[k], i)
	}
	results := make([]CopyResult, len(req.Copies))
	retries := 0
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		sub := req
		sub.Copies = nil
		for _, i := range groups[key] {
			sub.Copies = append(sub.Copies, req.Copies[i])
		}
		res, n, err := r.copyInto(ctx, l, key, sub)
		retries += n
		for j, i := range groups[key] {
			if j < len(res) {
				results[i] = res[j]
			}
		}
		if err != nil {
			return results, retries, err
		}
	}
	return results, retries, nil
}

// copyInto is Copy for the versions of one catalog file key.
func (r *Registry) copyInto(ctx context.Context, l layout, key string, req CopyRequest) ([]CopyResult, int, error) {
	results := make([]CopyResult, len(req.Copies))
	snap, err := r.readFile(ctx, l, key)
	if err != nil {
		return nil, 0, err
	}
	c, err := snap.parse(key)
	if err != nil {
		return nil, 0, err
	}
	var todo []int
	var paths []string
	files := make([][]catalog.Item, len(req.Copies))
	merged, errs := c.MergeAll(req.Copies) // on this local copy: later copies see earlier ones
	for i, vc := range req.Copies {
		res := &results[i]
		res.Product, res.Version = vc.Product, vc.Version
		m, err := merged[i], errs[i]
		switch {
		case err != nil:
			res.Status, res.Error = "failed", err.Error()
		case !m.Changed:
			res.Status = "unchanged"
		default:
			res.Status, res.DroppedDeltas = "copied", m.DroppedDeltas
			todo = append(todo, i)
			for _, it := range sortedItems(vc) {
				if !slices.ContainsFunc(m.DroppedDeltas, func(ik string) bool { return vc.Items[ik] == it }) {
					files[i] = append(files[i], it)
					paths = append(paths, it.Path)
				}
			}
		}
	}
	claims := map[int][]string{} // sharded: the aliases each copy claims
	if l.sharded() {
		for _, i := range todo {
			claims[i] = c.PendingAliases(req.Copies[i].Product)
		}
		todo = r.dropClaimed(ctx, nil, l.n, key, todo, claims, results)
		paths = nil
		for _, i := range todo {
			claims[-1] = append(claims[-1], claims[i]...) // the pending intent's
			for _, it := range files[i] {
				paths = append(paths, it.Path)
			}
		}
	}
	if len(todo) == 0 {
		return results, 0, nil
	}
	if req.DryRun {
		for _, i := range todo {
			for _, it := range files[i] {
				have, err := r.haveFile(ctx, it.Path, catalog.FileRef{SHA256: it.SHA256, Size: it.Size})
				if err != nil {
					results[i].Status, results[i].Error = "failed", err.Error()
					break
				}
				results[i].Files = append(results[i].Files, FileResult{Path: it.Path, Size: it.Size, Uploaded: !have})
			}
		}
		return results, 0, nil
	}

	id := newID()
	retries := 0
	st, err := r.commitIn(ctx, l, key, newID(), &snap, func(c *catalog.Catalog) (bool, error) {
		return true, c.AddPending(catalog.Pending{ID: id, Product: req.Copies[todo[0]].Product, Paths: paths, Expires: r.now().Add(PendingLease), Aliases: claims[-1]})
	})
	retries += st.Retries
	if err != nil {
		return nil, retries, fmt.Errorf("commit %s: %w", key, err)
	}
	// index.json lists the pending product from now on (a new registry
	// killed here still has both files).
	n, ix, err := r.syncIndex(ctx, l.n, key, st.Snapshot)
	retries += n
	if err != nil {
		return nil, retries, r.abandon(ctx, l.n, key, id, err)
	}
	if l.sharded() {
		// The index carries the claims now: one another file also
		// claims was claimed first.
		todo = r.dropClaimed(ctx, ix, l.n, key, todo, claims, results)
	}
	if err := r.waitForPrune(ctx, l.announcements(st), paths); err != nil {
		return nil, retries, r.abandon(ctx, l.n, key, id, err)
	}
	var ready []int
	for _, i := range todo {
		ok := true
		for _, it := range files[i] {
			uploaded, err := r.copyFile(ctx, it, req.Open, req.Progress)
			if err != nil {
				if ctx.Err() != nil {
					return nil, retries, r.abandon(ctx, l.n, key, id, ctx.Err())
				}
				results[i].Status, results[i].Error, ok = "failed", err.Error(), false
				break
			}
			results[i].Files = append(results[i].Files, FileResult{Path: it.Path, Size: it.Size, Uploaded: uploaded})
		}
		if ok {
			ready = append(ready, i)
		}
	}

	failed := map[int]string{}
	st, err = r.commitIn(ctx, l, key, newID(), nil, func(c *catalog.Catalog) (bool, error) {
		clear(failed)
		batch := make([]catalog.VersionCopy, len(ready))
		for j, i := range ready {
			batch[j] = req.Copies[i]
		}
		_, errs := c.MergeAll(batch)
		for j, err := range errs {
			if err != nil {
				failed[ready[j]] = err.Error() // a concurrent writer got there first
			}
		}
		c.RemovePending(id)
		return true, nil
	})
	retries += st.Retries
	if err != nil {
		return nil, retries, r.abandon(ctx, l.n, key, id, fmt.Errorf("commit %s: %w", key, err))
	}
	for i, msg := range failed {
		results[i].Status, results[i].Error = "failed", msg
	}
	n, _, err = r.syncIndex(ctx, l.n, key, st.Snapshot)
	retries += n
	if err != nil {
		return results, retries, fmt.Errorf("versions committed, but %s not updated (the next change to %s fixes it): %w", catalog.IndexPath, key, err)
	}
	return results, retries, nil
}

func sortedItems(vc catalog.VersionCopy) []catalog.Item {
	var out []catalog.Item
	for _, p := range vc.Paths() {
		for _, it := range vc.Items {
			if it.Path == p {
				out = append(out, it)
				break
			}
		}
	}
	return out
}

// copyFile streams one source file into the store unless it is there
// already; it reports whether bytes were sent.
func (r *Registry) copyFile(ctx context.Context, it catalog.Item, open func(context.Context, string) (io.ReadCloser, error), progress func(string, int64, int64)) (bool, error) {
	want := catalog.FileRef{SHA256: it.SHA256, Size: it.Size}
	have, err := r.haveFile(ctx, it.Path, want)
	if err != nil || have {
		return false, err
	}
	src, err := open(ctx, it.Path)
	if err != nil {
		return false, fmt.Errorf("source %s: %w", it.Path, err)
	}
	defer src.Close()
	body := &checkedReader{r: src, want: want, path: it.Path, h: sha256.New(), progress: progress}
	_, err = r.Store.Put(ctx, it.Path, body, it.Size, store.PutOptions{
		IfAbsent: true, SHA256: it.SHA256, ContentType: "application/octet-stream", CacheControl: CacheControlImmutable,
	})
	switch {
	case err == nil:
		return true, nil
	case body.err != nil:
		return false, body.err
	case errors.Is(err, store.ErrPreconditionFailed):
		have, err := r.haveFile(ctx, it.Path, want)
		if err == nil && !have {
			err = fmt.Errorf("upload %s: lost a race and the object then vanished", it.Path)
		}
		return false, err
	case errors.Is(err, store.ErrChecksumMismatch):
		return false, fmt.Errorf("source %s does not match the source catalog (size %d, sha256 %s): %w", it.Path, it.Size, it.SHA256, err)
	}
	return false, fmt.Errorf("upload %s: %w", it.Path, err)
}

// checkedReader hashes and counts a source stream and fails it, instead of
// ending it, when it ends short, runs long or has the wrong sha256: the
// store then keeps nothing.
type checkedReader struct {
	r    io.Reader
	want catalog.FileRef
	path string
	h    interface {
		io.Writer
		Sum([]byte) []byte
	}
	n        int64
	err      error
	progress func(string, int64, int64)
	lastRep  int64
}

func (c *checkedReader) Read(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(b)
	c.h.Write(b[:n])
	c.n += int64(n)
	if c.progress != nil && (c.n-c.lastRep >= 8<<20 || err == io.EOF) {
		c.lastRep = c.n
		c.progress(c.path, c.n, c.want.Size)
	}
	switch {
	case c.n > c.want.Size:
		c.err = fmt.Errorf("source %s is longer than the %d bytes its catalog says", c.path, c.want.Size)
	case err == io.EOF && c.n < c.want.Size:
		c.err = fmt.Errorf("source %s is truncated: %d of %d bytes", c.path, c.n, c.want.Size)
	case err == io.EOF:
		if got := hex.EncodeToString(c.h.Sum(nil)); got != c.want.SHA256 {
			c.err = fmt.Errorf("source %s has sha256 %s, its catalog says %s", c.path, got, c.want.SHA256)
		}
	case err != nil:
		c.err = fmt.Errorf("source %s: %w", c.path, err)
	}
	if c.err != nil {
		return n, c.err
	}
	return n, err
}

// dropClaimed marks failed the copies among todo whose alias claims
// another catalog file than key has in the index (ix, or index.json read
// now), and returns the others.
func (r *Registry) dropClaimed(ctx context.Context, ix *catalog.Index, n int, key string, todo []int, claims map[int][]string, results []CopyResult) []int {
	var keep []int
	for _, i := range todo {
		if err := r.checkClaims(ctx, ix, n, key, claims[i]); err != nil {
			results[i].Status, results[i].DroppedDeltas = "failed", nil
			if owned := (*catalog.AliasOwnedError)(nil); errors.As(err, &owned) {
				owned.Source = results[i].Product
				results[i].Error = owned.Error()
			} else {
				results[i].Error = fmt.Sprintf("alias clash: source product %s: %v: filter one of them out", results[i].Product, err)
			}
			continue
		}
		keep = append(keep, i)
	}
	return keep
}
