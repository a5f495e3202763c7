package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/delta"
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
	// VMDiskPath is the local file of Image.VM (a qcow2), when set;
	// VMDiskPartSHA256 its part digests, like RootPartSHA256.
	VMDiskPath       string
	VMDiskPartSHA256 []string
	// ProfilePaths are the local files of Image.Profiles, by name.
	ProfilePaths map[string]string
	// OpenRoot, when set, opens the root for its upload instead of
	// RootPath: a reader that checks the bytes as they stream (an image
	// resumed from its build record, whose digests were not computed from
	// the file now) and fails its last Read if they are not what Image
	// says. The upload then fails with ErrSourceChanged before the root
	// becomes visible and before the catalog is touched.
	OpenRoot func(ctx context.Context) (io.ReadCloser, error)
	// Reinspect, when set, is called once if the upload fails with
	// ErrSourceChanged: it returns the request made again from a full
	// inspection of the files, which Publish then publishes.
	Reinspect func(ctx context.Context) (PublishRequest, error)
	// NoDelta publishes no delta from the product's previous version. By
	// default a new version of a squashfs product gets one (see Publish).
	NoDelta bool
	// SBOMPath is the local file of Image.SBOM.
	SBOMPath string
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
	// Reinspected, when not empty, says why the request's recorded digests
	// were abandoned (a file changed since they were recorded) and the
	// files inspected and published again.
	Reinspected string `json:"reinspected,omitempty"`
}

// ErrSourceChanged is wrapped by Publish's error when a local file was not,
// while it was read, what the request says (it changed since it was
// hashed or recorded); nothing of it became visible.
var ErrSourceChanged = errors.New("local file changed since its digests were computed")

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
//  2. upload each file "only if absent", the root first, the store
//     verifying its SHA-256 (and part digests); a file already stored with
//     the right digest is not sent again;
//  3. right before the first file becomes visible (its bytes read and
//     checked: PutOptions.BeforeCommit), or after the uploads if none was
//     needed, record a pending intent, which protects the files (delta
//     included) from a concurrent prune (files found stored before it are
//     checked again);
//  4. commit the version and drop the intent; then bring index.json up to
//     date. The delta is listed only if its base is still in the catalog
//     being written: a delta whose base left is never listed.
//
// A publisher stopped at any point leaves a valid registry: before step 4
// the catalog does not reference the files; index.json lists the product
// from step 3 on. A file that is not what the request says fails before
// anything is visible and before the catalog is touched.
//
// A request with Reinspect whose files are found changed
// (ErrSourceChanged) is made again by Reinspect and published once more.
func (r *Registry) Publish(ctx context.Context, req PublishRequest) (*PublishResult, error) {
	res, err := r.publish(ctx, req)
	if err == nil || req.Reinspect == nil || !errors.Is(err, ErrSourceChanged) || ctx.Err() != nil {
		return res, err
	}
	fresh, ierr := req.Reinspect(ctx)
	if ierr != nil {
		return nil, fmt.Errorf("%w; inspecting the files again: %w", err, ierr)
	}
	fresh.Reinspect, fresh.DryRun, fresh.Progress, fresh.NoDelta = nil, req.DryRun, req.Progress, req.NoDelta
	res, ferr := r.publish(ctx, fresh)
	if ferr != nil {
		return nil, ferr
	}
	res.Reinspected = err.Error()
	return res, nil
}

func (r *Registry) publish(ctx context.Context, req PublishRequest) (*PublishResult, error) {
	img := req.Image
	if err := img.Validate(); err != nil {
		return nil, err
	}
	metaKey, rootKey := catalog.ImagePaths(img.Fingerprint, img.RootKind)
	res := &PublishResult{Fingerprint: img.Fingerprint, DryRun: req.DryRun}
	files := []upload{{metaKey, req.MetadataPath, img.Metadata, nil, nil}, {rootKey, req.RootPath, img.Root, req.RootPartSHA256, req.OpenRoot}}
	if img.VM != nil {
		if req.VMDiskPath == "" {
			return nil, errors.New("VM disk: no local file given")
		}
		files = append(files, upload{img.VM.Path(), req.VMDiskPath, img.VM.Disk, req.VMDiskPartSHA256, nil})
	}
	for _, name := range slices.Sorted(maps.Keys(img.Profiles)) {
		path, ok := req.ProfilePaths[name]
		if !ok {
			return nil, fmt.Errorf("profile %s: no local file given", name)
		}
		files = append(files, upload{catalog.ProfilePath(img.Fingerprint, name), path, img.Profiles[name], nil, nil})
	}
	if img.SBOM != nil {
		if req.SBOMPath == "" {
			return nil, fmt.Errorf("SBOM: no local file given")
		}
		files = append(files, upload{catalog.SBOMPath(img.Fingerprint), req.SBOMPath, *img.SBOM, nil, nil})
	}

	// 1. Does it fit, and is there anything to do?
	l, err := r.ensureLayout(ctx, !req.DryRun)
	if err != nil {
		return nil, err
	}
	key := l.fileOf(img.ProductKey())
	snap, err := r.readFile(ctx, l, key)
	if err != nil {
		return nil, err
	}
	c, err := snap.parse(key)
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
	var claims []string // the aliases other catalog files must not have
	if l.sharded() {
		claims = c.PendingAliases(add.Product)
		if err := r.checkClaims(ctx, nil, l.n, key, claims); err != nil {
			return nil, err
		}
		if add.VersionAdded {
			if err := r.checkPublishedElsewhere(ctx, img, add.Product); err != nil {
				return nil, err
			}
		}
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
		if errors.Is(err, delta.ErrMismatch) && req.OpenRoot != nil {
			// The root is not what its recorded digest says.
			return nil, fmt.Errorf("%w: %s: %w (nothing was published)", ErrSourceChanged, req.RootPath, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%w (nothing was published)", err)
		}
		res.Delta.Note = note
		if d != nil {
			img.Delta = d
			key := catalog.DeltaPath(img.Fingerprint, d.BaseFingerprint, d.File.SHA256)
			res.Delta.Path, res.Delta.Size = key, d.File.Size
			files = append(files, upload{key, path, d.File, nil, nil})
		}
	}

	// 2+3. Upload, announcing the publish (the pending intent) right
	// before the first file becomes visible, so a file that is not what
	// the request says (a stale build record) stops the publish with
	// nothing stored and the catalog untouched.
	if snap.etag == "" { // a new registry: refuse a store without conditions before writing
		if err := r.probeConditionalWrites(ctx); err != nil {
			return nil, err
		}
	}
	id := newID()
	paths := img.Paths()
	announced := false
	var written *snapshot // the product's file as the announcement wrote it
	announce := func(ctx context.Context) error {
		if announced {
			return nil
		}
		st, err := r.commitIn(ctx, l, key, newID(), &snap, func(c *catalog.Catalog) (bool, error) {
			im, _ := fitDelta(c, img)
			if _, err := c.CheckAdd(im); err != nil { // it must still fit
				return false, err
			}
			return true, c.AddPending(catalog.Pending{ID: id, Product: add.Product, Paths: paths, Expires: r.now().Add(PendingLease), Aliases: claims})
		})
		res.Retries += st.Retries
		if err != nil {
			return fmt.Errorf("commit %s: %w", key, err)
		}
		announced, written = true, st.Snapshot
		if add.ProductCreated || l.sharded() {
			n, ix, err := r.syncIndex(ctx, l.n, key, st.Snapshot)
			res.Retries += n
			if err != nil {
				return err
			}
			// The index now carries this publish's claims: one
			// another file also claims was claimed first.
			if err := r.checkClaims(ctx, ix, l.n, key, claims); err != nil {
				return err
			}
		}
		// Once any prune that may delete these files is over.
		return r.waitForPrune(ctx, l.announcements(st), paths)
	}
	fail := func(err error) (*PublishResult, error) {
		if announced {
			return nil, r.abandon(ctx, l.n, key, id, err)
		}
		return nil, err
	}
	res.Files = make([]FileResult, len(files))
	var foundEarly []int // already stored, seen before the announcement
	order := []int{1, 0} // the root first: the big file, the one most likely to fail its check
	for i := 2; i < len(files); i++ {
		order = append(order, i)
	}
	for _, i := range order {
		f := files[i]
		uploaded, err := r.uploadFile(ctx, f, req.Progress, announce)
		if err != nil {
			return fail(err)
		}
		if !uploaded && !announced {
			foundEarly = append(foundEarly, i)
		}
		res.Files[i] = FileResult{Path: f.key, Size: f.ref.Size, Uploaded: uploaded}
	}
	if err := announce(ctx); err != nil {
		return fail(err)
	}
	// A file found stored before the announcement may have been pruned
	// since: check again, now that no prune can take it.
	for _, i := range foundEarly {
		uploaded, err := r.uploadFile(ctx, files[i], req.Progress, nil)
		if err != nil {
			return fail(err)
		}
		res.Files[i].Uploaded = uploaded
	}

	// 4. Commit.
	var final catalog.AddResult
	var deltaNote string
	entryChanged := true // what index.json says of the file
	// Starting from the file as announced: a conditional write, so if
	// another writer changed it meanwhile the commit reads it again.
	st, err := r.commitIn(ctx, l, key, newID(), r.unchanged(ctx, key, written), func(c *catalog.Catalog) (bool, error) {
		before := c.ShardEntry(key, r.now())
		im, note := fitDelta(c, img) // the base may have left meanwhile
		a, err := c.Add(im)
		if err != nil {
			return false, err
		}
		final, deltaNote = a, note
		c.RemovePending(id)
		after := c.ShardEntry(key, r.now())
		entryChanged = !slices.Equal(before.Products, after.Products) || !slices.Equal(before.Aliases, after.Aliases)
		return true, nil
	})
	res.Retries += st.Retries
	if err != nil {
		return fail(fmt.Errorf("commit %s: %w", key, err))
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
	if l.sharded() && !entryChanged {
		// The announcement already put the product and its aliases in
		// the index (as pending): nothing the index says of the file moved.
		return res, nil
	}
	n, _, err := r.syncIndex(ctx, l.n, key, st.Snapshot)
	res.Retries += n
	if err != nil {
		return nil, fmt.Errorf("image committed, but %s not updated (the next change to %s fixes it): %w", catalog.IndexPath, key, err)
	}
	return res, nil
}

// abandon drops the pending intent of a failed publish (best effort: an
// intent left behind simply expires) and returns the original error.
func (r *Registry) abandon(ctx context.Context, n int, key, id string, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	_, _ = r.commit(ctx, key, newID(), nil, func(c *catalog.Catalog) (bool, error) {
		before := len(c.LivePending(r.now()))
		c.RemovePending(id)
		return len(c.LivePending(r.now())) != before, nil
	})
	_, _, _ = r.syncIndex(ctx, n, key, nil)
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

// upload is one file of an image to upload.
type upload struct {
	key, path string
	ref       catalog.FileRef
	parts     []string
	// open, when set, opens the body instead of path (PublishRequest.OpenRoot).
	open func(ctx context.Context) (io.ReadCloser, error)
}

// uploadFile sends a local file unless the store already has it; it
// reports whether bytes were sent. beforeCommit runs before the object
// becomes visible.
func (r *Registry) uploadFile(ctx context.Context, f upload, progress func(string, int64, int64), beforeCommit func(context.Context) error) (bool, error) {
	key, want := f.key, f.ref
	have, err := r.haveFile(ctx, key, want)
	if err != nil || have {
		return false, err
	}
	report := func(done int64) {
		if progress != nil {
			progress(key, done, want.Size)
		}
	}
	var body io.Reader
	var stream *progressStream
	if f.open != nil {
		rc, err := f.open(ctx)
		if err != nil {
			return false, fmt.Errorf("upload %s: %w", key, err)
		}
		defer rc.Close()
		stream = newProgressStream(rc, want.Size, report)
		body = stream
	} else {
		file, err := os.Open(f.path)
		if err != nil {
			return false, fmt.Errorf("upload %s: %w", key, err)
		}
		defer file.Close()
		body = newProgressFile(file, want.Size, report)
	}
	_, err = r.Store.Put(ctx, key, body, want.Size, store.PutOptions{
		IfAbsent: true, SHA256: want.SHA256, PartSHA256: f.parts, PartSize: UploadPartSize,
		ContentType: "application/octet-stream", CacheControl: CacheControlImmutable,
		BeforeCommit: beforeCommit,
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
	case ctx.Err() == nil && (errors.Is(err, store.ErrChecksumMismatch) || stream != nil && stream.failed()):
		return false, fmt.Errorf("upload %s: %w: %s (or it was corrupted in transit): %w", key, ErrSourceChanged, f.path, err)
	}
	return false, fmt.Errorf("upload %s: %w", key, err)
}

// waitForPrune waits while a live prune lists any of paths as deletable,
// so that a file this publish reuses cannot vanish under it.
// c is the latest images.json the caller has (nil: read it); it is re-read
// while waiting.
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
