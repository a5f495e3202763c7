package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
)

// PublishRequest is one split image to publish.
type PublishRequest struct {
	// Image is the catalog description of the image, digests included
	// (computed once, by the caller, while inspecting the files).
	Image catalog.Image
	// MetadataPath and RootPath are the local files to upload.
	MetadataPath, RootPath string
	// RootPartSHA256 are the SHA-256 digests of the root's consecutive
	// UploadPartSize-byte chunks, computed while inspecting it (optional):
	// a multipart upload then sends each part with its digest and the
	// store checks it, with no second hashing pass.
	RootPartSHA256 []string
	// ProfilePaths are the local files of Image.Profiles, by name.
	ProfilePaths map[string]string
	// NoDelta publishes no delta from the product's previous version. By
	// default a new version of a squashfs product gets one (see Publish).
	NoDelta bool
	// DryRun checks everything and reports what would happen, writing
	// nothing.
	DryRun bool
	// Progress, when set, is called while a file uploads.
	Progress func(key string, done, total int64)
}

// FileResult says what happened to one image file.
type FileResult struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// Uploaded is true when the file was (or, in a dry run, would be) sent;
	// false when the store already had it with the right digest.
	Uploaded bool `json:"uploaded"`
}

// PublishResult reports a publish.
type PublishResult struct {
	Product     string       `json:"product"`
	Version     string       `json:"version"`
	Fingerprint string       `json:"fingerprint"`
	Arch        string       `json:"arch"`
	Aliases     []string     `json:"aliases"`
	Files       []FileResult `json:"files"`
	// Changed is false when the registry already had this exact image
	// with all its aliases: nothing was uploaded or written.
	Changed        bool     `json:"changed"`
	ProductCreated bool     `json:"product_created"`
	AliasesAdded   []string `json:"aliases_added,omitempty"`
	DryRun         bool     `json:"dry_run"`
	// Retries counts catalog writes lost to concurrent publishers.
	Retries int `json:"retries"`
	// Delta is the delta from the previous version, when one was due.
	Delta *DeltaResult `json:"delta,omitempty"`
}

// Publish uploads the image's files content-addressed, then commits it to
// the catalog:
//  1. read the catalog and check the image fits (alias owners, version
//     rules); an identical image already published ends here, 0 bytes sent;
//     A new version of a squashfs product whose previous version (only
//     that one) has a squashfs root also gets a delta: the base root is
//     fetched from the store (digest checked), the delta encoded with
//     xdelta3 and decoded again, which must give the new root byte for
//     byte. xdelta3 missing is an error here, before anything is written
//     (unless NoDelta);
//  2. record a pending intent (protects the files, delta included, from a
//     concurrent prune);
//  3. upload each file "only if absent", the store verifying its SHA-256;
//     a file already stored with the right digest is not sent again;
//  4. commit the version and drop the intent; then bring index.json up to
//     date. The delta is listed only if its base is still in the catalog
//     being written: a delta whose base left is never listed.
//
// A publisher stopped at any point leaves a valid registry: before step 4
// the catalog does not reference the files; index.json lists the product
// from step 2 on.
func (r *Registry) Publish(ctx context.Context, req PublishRequest) (*PublishResult, error) {
	img := req.Image
	if err := img.Validate(); err != nil {
		return nil, err
	}
	metaKey, rootKey := catalog.ImagePaths(img.Fingerprint, img.RootKind)
	res := &PublishResult{Fingerprint: img.Fingerprint, DryRun: req.DryRun}
	type file struct {
		key, path string
		ref       catalog.FileRef
		parts     []string
	}
	files := []file{{metaKey, req.MetadataPath, img.Metadata, nil}, {rootKey, req.RootPath, img.Root, req.RootPartSHA256}}
	for _, name := range slices.Sorted(maps.Keys(img.Profiles)) {
		path, ok := req.ProfilePaths[name]
		if !ok {
			return nil, fmt.Errorf("profile %s: no local file given", name)
		}
		files = append(files, file{catalog.ProfilePath(img.Fingerprint, name), path, img.Profiles[name], nil})
	}

	// 1. Does it fit, and is there anything to do?
	snap, err := r.readSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	c, err := snap.parse()
	if err != nil {
		return nil, err
	}
	add, err := c.Add(img) // on this local copy: to report the outcome
	if err != nil {
		return nil, err
	}
	p := c.Products[add.Product]
	res.Product, res.Version, res.Arch, res.Aliases = add.Product, add.Version, p.Arch, p.AliasList()
	res.ProductCreated, res.AliasesAdded, res.Changed = add.ProductCreated, add.AliasesAdded, add.Changed()
	if !add.Changed() {
		for _, f := range files {
			res.Files = append(res.Files, FileResult{Path: f.key, Size: f.ref.Size})
		}
		return res, nil
	}
	var plan *deltaPlan
	if add.VersionAdded {
		if plan, err = planDelta(c, img, req.NoDelta); err != nil {
			return nil, err
		}
	}
	if plan != nil {
		res.Delta = &DeltaResult{Base: plan.base, BaseFingerprint: plan.baseImg.Fingerprint}
	}
	if req.DryRun {
		for _, f := range files {
			have, err := r.haveFile(ctx, f.key, f.ref)
			if err != nil {
				return nil, err
			}
			res.Files = append(res.Files, FileResult{Path: f.key, Size: f.ref.Size, Uploaded: !have})
		}
		if res.Delta != nil {
			res.Delta.Note = "to encode when publishing"
		}
		return res, nil
	}
	if plan != nil {
		dir, err := os.MkdirTemp("", "publish-delta-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		d, path, note, err := r.makeDelta(ctx, plan, img, req.RootPath, dir)
		if err != nil {
			return nil, fmt.Errorf("%w (nothing was published)", err)
		}
		res.Delta.Note = note
		if d != nil {
			img.Delta = d
			key := catalog.DeltaPath(img.Fingerprint, d.BaseFingerprint, d.File.SHA256)
			res.Delta.Path, res.Delta.Size = key, d.File.Size
			files = append(files, file{key, path, d.File, nil})
		}
	}

	// 2. Announce the upload, starting from the catalog just read.
	id := newID()
	paths := img.Paths()
	st, err := r.commit(ctx, newID(), &snap, func(c *catalog.Catalog) (bool, error) {
		im, _ := fitDelta(c, img)
		if _, err := c.CheckAdd(im); err != nil { // fail before uploading
			return false, err
		}
		return true, c.AddPending(catalog.Pending{ID: id, Product: add.Product, Paths: paths, Expires: r.now().Add(PendingLease)})
	})
	res.Retries += st.Retries
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", catalog.ImagesPath, err)
	}
	if add.ProductCreated {
		n, err := r.syncIndex(ctx)
		res.Retries += n
		if err != nil {
			return nil, r.abandon(ctx, id, err)
		}
	}

	// 3. Upload, once any prune that may delete these files is over.
	if err := r.waitForPrune(ctx, st.Catalog, paths); err != nil {
		return nil, r.abandon(ctx, id, err)
	}
	for _, f := range files {
		uploaded, err := r.uploadFile(ctx, f.key, f.path, f.ref, f.parts, req.Progress)
		if err != nil {
			return nil, r.abandon(ctx, id, err)
		}
		res.Files = append(res.Files, FileResult{Path: f.key, Size: f.ref.Size, Uploaded: uploaded})
	}

	// 4. Commit.
	var final catalog.AddResult
	var deltaNote string
	st, err = r.commit(ctx, newID(), nil, func(c *catalog.Catalog) (bool, error) {
		im, note := fitDelta(c, img) // the base may have left meanwhile
		a, err := c.Add(im)
		if err != nil {
			return false, err
		}
		final, deltaNote = a, note
		c.RemovePending(id)
		return true, nil
	})
	res.Retries += st.Retries
	if err != nil {
		return nil, r.abandon(ctx, id, fmt.Errorf("commit %s: %w", catalog.ImagesPath, err))
	}
	if st.Catalog != nil {
		if p := st.Catalog.Products[add.Product]; p != nil {
			res.Aliases = p.AliasList()
		}
	}
	res.ProductCreated, res.AliasesAdded = final.ProductCreated || add.ProductCreated, final.AliasesAdded
	if res.Delta != nil && img.Delta != nil {
		res.Delta.Listed = final.DeltaAdded
		switch {
		case deltaNote != "":
			res.Delta.Note = deltaNote
		case !final.DeltaAdded:
			res.Delta.Note = "not listed: another publisher published this version first"
		}
	}
	n, err := r.syncIndex(ctx)
	res.Retries += n
	if err != nil {
		return nil, fmt.Errorf("image committed, but %s not updated (the next publish fixes it): %w", catalog.IndexPath, err)
	}
	return res, nil
}

// abandon drops the pending intent of a failed publish (best effort: an
// intent left behind simply expires) and returns the original error.
func (r *Registry) abandon(ctx context.Context, id string, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	_, _ = r.commit(ctx, newID(), nil, func(c *catalog.Catalog) (bool, error) {
		before := len(c.LivePending(r.now()))
		c.RemovePending(id)
		return len(c.LivePending(r.now())) != before, nil
	})
	_, _ = r.syncIndex(ctx)
	return cause
}

// haveFile reports whether the store holds key with the expected digest.
// A different object under a content address means the registry is
// damaged: that is an error, never silently overwritten.
func (r *Registry) haveFile(ctx context.Context, key string, want catalog.FileRef) (bool, error) {
	info, err := r.Store.Stat(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", key, err)
	}
	// A backend that cannot tell the digest without reading leaves SHA256
	// empty: the size must then do (the store verified the digest when the
	// object was written, and `publish verify` re-reads everything).
	if info.Size != want.Size || info.SHA256 != "" && info.SHA256 != want.SHA256 {
		return false, fmt.Errorf("%s is already stored with different content (size %d, sha256 %q; want size %d, sha256 %s): the registry is damaged, run `publish verify`", key, info.Size, info.SHA256, want.Size, want.SHA256)
	}
	return true, nil
}

// uploadFile sends a local file to key unless the store already has it;
// it reports whether bytes were sent.
func (r *Registry) uploadFile(ctx context.Context, key, path string, want catalog.FileRef, parts []string, progress func(string, int64, int64)) (bool, error) {
	have, err := r.haveFile(ctx, key, want)
	if err != nil || have {
		return false, err
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("upload %s: %w", key, err)
	}
	defer f.Close()
	body := newProgressFile(f, want.Size, func(done int64) {
		if progress != nil {
			progress(key, done, want.Size)
		}
	})
	_, err = r.Store.Put(ctx, key, body, want.Size, store.PutOptions{
		IfAbsent: true, SHA256: want.SHA256, PartSHA256: parts, PartSize: UploadPartSize,
		ContentType: "application/octet-stream", CacheControl: CacheControlImmutable,
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrPreconditionFailed):
		// Another publisher stored it first: fine if it is the same.
		have, err := r.haveFile(ctx, key, want)
		if err == nil && !have {
			err = fmt.Errorf("upload %s: lost a race and the object then vanished", key)
		}
		return false, err
	case errors.Is(err, store.ErrChecksumMismatch):
		return false, fmt.Errorf("upload %s: %s changed since it was hashed (or was corrupted in transit): %w", key, path, err)
	}
	return false, fmt.Errorf("upload %s: %w", key, err)
}

// waitForPrune waits while a live prune lists any of paths as deletable,
// so that a file this publish reuses cannot vanish under it.
// c is the latest catalog the caller has; it is re-read while waiting.
func (r *Registry) waitForPrune(ctx context.Context, c *catalog.Catalog, paths []string) error {
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			var err error
			if c, _, err = r.readCatalog(ctx); err != nil {
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
