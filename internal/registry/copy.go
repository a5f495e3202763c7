package registry

import (
	"context"
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
	// By is who copies: the writer the products it creates record, and
	// whether it may add to products another writer wrote
	// (catalog/writer.go). By.Writer is required.
	By catalog.Merger
	// DryRun reports what would be copied, writing nothing.
	DryRun bool
	// Progress, when set, is called while a file uploads.
	Progress func(key string, done, total int64)
}

// CopyResult reports one version of a copy.
type CopyResult struct {
	// Product and Version name the version, as the source does.
	Product string `json:"product"`
	Version string `json:"version"`
	// Status is "copied", "unchanged" or "failed" (in a dry run "copied"
	// means would be); Error says why it failed.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Files are the version's files, sent or found stored.
	Files []FileResult `json:"files,omitempty"`
	// DroppedDeltas are delta items left out: their base version is not in
	// the registry.
	DroppedDeltas []string `json:"dropped_deltas,omitempty"`
	// Joined, when the version went into a product another writer wrote
	// (CopyRequest.By.IntoExisting), names that writer.
	Joined string `json:"joined,omitempty"`
}

// Copy commits the versions of req the registry lacks, the way Publish
// commits an image: check them against the current catalog; record one
// pending intent for their files; stream each file in (skipped when stored
// with the right size and digest), checked against the item's size and
// sha256; then one conditional commit merging every version whose files all
// arrived, and index.json brought up to date. A version that does not fit
// (a product-key or alias clash, different content under its key, a
// product another writer wrote: catalog.MergeAll) or
// whose file is wrong or unreadable fails alone, with its error; the rest
// goes on. Nothing is referenced before it is stored and checked.
//
// With several catalog files each file's versions go through these steps
// in turn, and a version whose aliases another file has fails.
func (r *Registry) Copy(ctx context.Context, req CopyRequest) ([]CopyResult, int, error) {
	if req.By.Writer == "" {
		return nil, 0, fmt.Errorf("copy: no writer named")
	}
	l, err := r.ensureLayout(ctx, !req.DryRun)
	if err != nil {
		return nil, 0, err
	}
	groups := map[string][]int{}
	for i, vc := range req.Copies {
		k := l.FileOf(vc.Product)
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

// copyPlan is what a copy into one catalog file is to do.
type copyPlan struct {
	req     CopyRequest
	results []CopyResult
	todo    []int            // the copies to make, by index
	files   [][]catalog.Item // each copy's files (its dropped deltas left out)
	claims  map[int][]string // each copy's alias claims
}

// copyInto is Copy for the versions of one catalog file key: plan, then
// upload and commit over a txn.
func (r *Registry) copyInto(ctx context.Context, l layout, key string, req CopyRequest) ([]CopyResult, int, error) {
	snap, err := r.readFile(ctx, l, key)
	if err != nil {
		return nil, 0, err
	}
	c, err := snap.parse(key)
	if err != nil {
		return nil, 0, err
	}
	p := planCopy(c, l, req)
	p.todo = r.dropClaimed(ctx, nil, l, key, p)
	if len(p.todo) == 0 {
		return p.results, 0, nil
	}
	if req.DryRun {
		return p.results, 0, r.copyDryRun(ctx, p)
	}
	var paths, claims []string
	for _, i := range p.todo {
		claims = append(claims, p.claims[i]...)
		for _, it := range p.files[i] {
			paths = append(paths, it.Path)
		}
	}
	t, err := r.begin(ctx, l, key, snap, req.Copies[p.todo[0]].Product, paths, claims)
	if err != nil {
		return nil, 0, err
	}
	t.claimed = func(ctx context.Context, ix *catalog.Index) error {
		p.todo = r.dropClaimed(ctx, ix, l, key, p)
		return nil
	}
	if err := t.announce(ctx); err != nil {
		return nil, t.retries, t.abandon(ctx, err)
	}
	ready, err := p.upload(ctx, t)
	if err != nil {
		return nil, t.retries, t.abandon(ctx, err)
	}
	err = p.commit(ctx, t, ready)
	if !t.committed {
		return nil, t.retries, err
	}
	if err != nil {
		return p.results, t.retries, fmt.Errorf("versions committed, but %w", err)
	}
	return p.results, t.retries, nil
}

// planCopy merges the copies into c, a local copy of their catalog file
// (later copies see earlier ones), and lists those that change it.
func planCopy(c *catalog.Catalog, l layout, req CopyRequest) *copyPlan {
	p := &copyPlan{req: req, results: make([]CopyResult, len(req.Copies)), files: make([][]catalog.Item, len(req.Copies)), claims: map[int][]string{}}
	merged, errs := c.MergeAll(req.Copies, req.By)
	for i, vc := range req.Copies {
		res := &p.results[i]
		res.Product, res.Version = vc.Product, vc.Version
		m, err := merged[i], errs[i]
		switch {
		case err != nil:
			res.Status, res.Error = "failed", err.Error()
		case !m.Changed:
			res.Status = "unchanged"
		default:
			res.Status, res.DroppedDeltas, res.Joined = "copied", m.DroppedDeltas, m.Joined
			p.todo = append(p.todo, i)
			p.claims[i] = l.Claims(c, vc.Product)
			for _, it := range sortedItems(vc) {
				if !slices.ContainsFunc(m.DroppedDeltas, func(ik string) bool { return vc.Items[ik] == it }) {
					p.files[i] = append(p.files[i], it)
				}
			}
		}
	}
	return p
}

// copyDryRun reports the files the copies would send.
func (r *Registry) copyDryRun(ctx context.Context, p *copyPlan) error {
	for _, i := range p.todo {
		for _, it := range p.files[i] {
			have, err := r.haveFile(ctx, it.Path, catalog.FileRef{SHA256: it.SHA256, Size: it.Size})
			if err != nil {
				p.results[i].Status, p.results[i].Error = "failed", err.Error()
				break
			}
			p.results[i].Files = append(p.results[i].Files, FileResult{Path: it.Path, Size: it.Size, Uploaded: !have})
		}
	}
	return nil
}

// upload streams each copy's files in; a copy with a file that fails
// fails alone. It returns the copies whose files all arrived.
func (p *copyPlan) upload(ctx context.Context, t *txn) ([]int, error) {
	var ready []int
	for _, i := range p.todo {
		ok := true
		for _, it := range p.files[i] {
			sent, err := t.upload(ctx, p.source(it), p.req.Progress)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				p.results[i].Status, p.results[i].Error, ok = "failed", err.Error(), false
				break
			}
			p.results[i].Files = append(p.results[i].Files, FileResult{Path: it.Path, Size: it.Size, Uploaded: sent})
		}
		if ok {
			ready = append(ready, i)
		}
	}
	return ready, nil
}

// source is the upload of item it from the source, checked as it streams
// (the source is not trusted to check anything).
func (p *copyPlan) source(it catalog.Item) upload {
	return upload{
		key: it.Path, ref: catalog.FileRef{SHA256: it.SHA256, Size: it.Size}, name: "source " + it.Path, hash: true,
		open: func(ctx context.Context) (io.ReadCloser, error) { return p.req.Open(ctx, it.Path) },
		refused: func(err error) error {
			if errors.Is(err, store.ErrChecksumMismatch) {
				return fmt.Errorf("source %s does not match the source catalog (size %d, sha256 %s): %w", it.Path, it.Size, it.SHA256, err)
			}
			return err
		},
	}
}

// commit merges the copies that are ready in one conditional write; one
// a concurrent writer got in first fails.
func (p *copyPlan) commit(ctx context.Context, t *txn, ready []int) error {
	failed := map[int]string{}
	_, err := t.commit(ctx, func(c *catalog.Catalog) error {
		clear(failed)
		batch := make([]catalog.VersionCopy, len(ready))
		for j, i := range ready {
			batch[j] = p.req.Copies[i]
		}
		_, errs := c.MergeAll(batch, p.req.By)
		for j, err := range errs {
			if err != nil {
				failed[ready[j]] = err.Error()
			}
		}
		return nil
	})
	for i, msg := range failed {
		p.results[i].Status, p.results[i].Error = "failed", msg
	}
	return err
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

// dropClaimed marks failed the copies among p.todo whose alias claims
// another catalog file than key has in the index (ix, or index.json read
// now), and returns the others.
func (r *Registry) dropClaimed(ctx context.Context, ix *catalog.Index, l layout, key string, p *copyPlan) []int {
	var keep []int
	for _, i := range p.todo {
		if err := r.checkClaims(ctx, ix, l, key, p.claims[i]); err != nil {
			res := &p.results[i]
			res.Status, res.DroppedDeltas = "failed", nil
			if owned := (*catalog.AliasOwnedError)(nil); errors.As(err, &owned) {
				owned.Source = res.Product
				res.Error = owned.Error()
			} else {
				res.Error = fmt.Sprintf("alias clash: source product %s: %v: filter one of them out", res.Product, err)
			}
			continue
		}
		keep = append(keep, i)
	}
	return keep
}
