package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/delta"
	"github.com/incus-appliance/registry/internal/provenance"
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
	// DeltaDepth is how many of the product's last versions a new version
	// of a squashfs product gets a delta from (see Publish); 0 makes
	// none. DefaultDeltaDepth is publish's default.
	DeltaDepth int
	// SBOMPath is the local file of Image.SBOM.
	SBOMPath string
	// Provenance, when set, is what the image was built from: Publish
	// makes its in-toto Statement (its Files, the subject, are the image's
	// files as stored) and stores it as one more file of the version
	// (Image.Provenance), which the catalog's signature then covers.
	Provenance *provenance.Inputs
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
	// Product and Version are the keys the image is published under.
	Product string `json:"product"`
	Version string `json:"version"`
	// Fingerprint is the image's (the container's, when it also has a
	// VM disk).
	Fingerprint string `json:"fingerprint"`
	// Arch and Aliases are the product's, as the catalog has them now.
	Arch    string   `json:"arch"`
	Aliases []string `json:"aliases"`
	// Files are the image's files (catalog.Image.Files), delta included.
	Files []FileResult `json:"files"`
	// Changed is false when the registry already had this exact image
	// with all its aliases: nothing was uploaded or written.
	Changed bool `json:"changed"`
	// ProductCreated and AliasesAdded say what the publish added besides
	// the version.
	ProductCreated bool     `json:"product_created"`
	AliasesAdded   []string `json:"aliases_added,omitempty"`
	DryRun         bool     `json:"dry_run"`
	// Retries counts catalog writes lost to concurrent publishers.
	Retries int `json:"retries"`
	// Deltas are the deltas from older versions that were due, newest
	// base first.
	Deltas []DeltaResult `json:"deltas,omitempty"`
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
//     A new version of a squashfs product also gets a delta from each of
//     the product's last DeltaDepth squashfs versions: each base root is
//     fetched from the store (digest checked), the delta encoded with
//     xdelta3 and decoded again, which must give the new root byte for
//     byte; a delta larger than half the root is left out, with a note.
//     xdelta3 missing is an error here, before anything is written
//     (unless DeltaDepth is 0);
//  2. upload each file "only if absent", the root first, the store
//     verifying its SHA-256 (and part digests); a file already stored with
//     the right digest is not sent again;
//  3. right before the first file becomes visible (its bytes read and
//     checked: PutOptions.BeforeCommit), or after the uploads if none was
//     needed, record a pending intent, which protects the files (delta
//     included) from a concurrent prune (files found stored before it are
//     checked again);
//  4. commit the version and drop the intent; then bring index.json up to
//     date. A delta is listed only if its base is still in the catalog
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
	res, err := r.publishContended(ctx, req)
	if err == nil || req.Reinspect == nil || !errors.Is(err, ErrSourceChanged) || ctx.Err() != nil {
		return res, err
	}
	fresh, ierr := req.Reinspect(ctx)
	if ierr != nil {
		return nil, fmt.Errorf("%w; inspecting the files again: %w", err, ierr)
	}
	fresh.Reinspect, fresh.DryRun, fresh.Progress, fresh.DeltaDepth = nil, req.DryRun, req.Progress, req.DeltaDepth
	if fresh.Provenance == nil {
		fresh.Provenance = req.Provenance
	}
	res, ferr := r.publishContended(ctx, fresh)
	if ferr != nil {
		return nil, ferr
	}
	res.Reinspected = err.Error()
	return res, nil
}

// claimAttempts is how many times a publish whose alias claim meets
// another publish's in flight (claimInFlightError) is made.
const claimAttempts = 6

// publishContended publishes req; when another publish in flight claims
// one of its aliases from another catalog file (both announced at the same
// instant: each sees the other's claim, and each abandoned its own), it
// waits a random moment and tries again, so that one of the two announces
// first and wins. Files already uploaded are found stored.
func (r *Registry) publishContended(ctx context.Context, req PublishRequest) (*PublishResult, error) {
	for attempt := 1; ; attempt++ {
		res, err := r.publish(ctx, req)
		var inFlight *claimInFlightError
		if !errors.As(err, &inFlight) || attempt == claimAttempts {
			return res, err
		}
		select {
		case <-time.After(50*time.Millisecond + rand.N(time.Duration(attempt)*200*time.Millisecond)):
		case <-ctx.Done():
			return nil, err
		}
	}
}

// publishPlan is what a publish is to do, decided from the catalog file
// of its product before anything is written.
type publishPlan struct {
	req    PublishRequest
	img    catalog.Image // its Deltas set once encoded
	l      layout
	key    string   // the product's catalog file
	snap   snapshot // key as read
	add    catalog.AddResult
	claims []string    // the aliases other catalog files must not have
	deltas []deltaPlan // the deltas to make
	made   made        // the files the publish makes
	res    *PublishResult
}

// made are the files a publish makes itself: the deltas (local files by
// their store path) and the provenance statement.
type made struct {
	deltas     map[string]string
	provenance []byte
}

func (r *Registry) publish(ctx context.Context, req PublishRequest) (*PublishResult, error) {
	p, err := r.planPublish(ctx, req)
	if err != nil {
		return nil, err
	}
	if !p.add.Changed() || req.DryRun {
		return p.res, nil
	}
	uploads, cleanup, err := r.encodeDeltas(ctx, p)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	t, err := r.begin(ctx, p.l, p.key, p.snap, p.add.Product, p.img.Paths(), p.claims)
	if err != nil {
		return nil, err
	}
	// The announcement checks that the image still fits, and the claims
	// against the other files once the index carries them.
	t.fits = func(c *catalog.Catalog) error {
		im, _ := fitDeltas(c, p.img)
		_, err := c.CheckAdd(im)
		return err
	}
	t.claimed = func(ctx context.Context, ix *catalog.Index) error {
		return r.checkClaims(ctx, ix, p.l, p.key, p.claims)
	}
	if err := p.upload(ctx, t, uploads); err != nil {
		return nil, t.abandon(ctx, err)
	}
	return p.commit(ctx, t)
}

// planPublish checks that the image fits the catalog file of its product
// (alias owners, version rules and, with several files, the aliases and
// images of the others) and what it changes. A dry run, or an image the
// catalog already has, is answered here: the files it would send.
func (r *Registry) planPublish(ctx context.Context, req PublishRequest) (*publishPlan, error) {
	p := &publishPlan{req: req, img: req.Image, res: &PublishResult{Fingerprint: req.Image.Fingerprint, DryRun: req.DryRun}}
	if err := p.img.Validate(); err != nil {
		return nil, err
	}
	var err error
	if p.img.Provenance, p.made.provenance, err = statementOf(req.Provenance, p.img); err != nil {
		return nil, err
	}
	uploads, err := uploadsFor(req, p.img, p.made)
	if err != nil {
		return nil, err
	}
	if p.l, err = r.ensureLayout(ctx, !req.DryRun); err != nil {
		return nil, err
	}
	p.key = p.l.FileOf(p.img.ProductKey())
	if p.snap, err = r.readFile(ctx, p.l, p.key); err != nil {
		return nil, err
	}
	c, err := p.snap.parse(p.key)
	if err != nil {
		return nil, err
	}
	if p.add, err = c.Add(p.img); err != nil { // on this local copy: to report the outcome
		return nil, err
	}
	prod := c.Products[p.add.Product]
	res := p.res
	res.Product, res.Version, res.Arch, res.Aliases = p.add.Product, p.add.Version, prod.Arch, prod.AliasList()
	res.ProductCreated, res.AliasesAdded, res.Changed = p.add.ProductCreated, p.add.AliasesAdded, p.add.Changed()
	if !p.add.Changed() {
		// The version keeps the statement it was published with.
		res.Files = filesOf(slices.DeleteFunc(uploads, func(u upload) bool { return u.made }), nil)
		return p, nil
	}
	p.claims = p.l.Claims(c, p.add.Product)
	if err := r.checkClaims(ctx, nil, p.l, p.key, p.claims); err != nil {
		return nil, err
	}
	if p.add.VersionAdded {
		if err := r.checkRelations(ctx, p.l, c, p.img); err != nil {
			return nil, err
		}
		if err := r.checkPublishedElsewhere(ctx, p.l, p.key, p.img, p.add.Product); err != nil {
			return nil, err
		}
		if p.deltas, err = planDeltas(c, req, p.img, req.DeltaDepth); err != nil {
			return nil, err
		}
	}
	for _, d := range p.deltas {
		res.Deltas = append(res.Deltas, DeltaResult{FType: catalog.DeltaFType(d.kind), Base: d.base.Version, BaseFingerprint: d.base.Image.Fingerprint})
	}
	if req.DryRun {
		return p, r.dryRun(ctx, p, uploads)
	}
	return p, nil
}

// dryRun reports the files a publish would send.
func (r *Registry) dryRun(ctx context.Context, p *publishPlan, uploads []upload) error {
	sent := make([]bool, len(uploads))
	for i, u := range uploads {
		have, err := r.haveFile(ctx, u.key, u.ref)
		if err != nil {
			return err
		}
		sent[i] = !have
	}
	p.res.Files = filesOf(uploads, sent)
	for i := range p.res.Deltas {
		p.res.Deltas[i].Note = "to encode when publishing"
	}
	return nil
}

// filesOf reports uploads, sent[i] telling whether upload i was sent.
func filesOf(uploads []upload, sent []bool) []FileResult {
	out := make([]FileResult, len(uploads))
	for i, u := range uploads {
		out[i] = FileResult{Path: u.key, Size: u.ref.Size, Uploaded: sent != nil && sent[i]}
	}
	return out
}

// encodeDeltas makes the planned deltas (each checked by decoding it
// again) and returns the uploads of the image with them; cleanup removes
// their local files.
func (r *Registry) encodeDeltas(ctx context.Context, p *publishPlan) (uploads []upload, cleanup func(), err error) {
	cleanup = func() {}
	if len(p.deltas) > 0 {
		dir, err := os.MkdirTemp("", "publish-delta-")
		if err != nil {
			return nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		p.made.deltas = map[string]string{}
		var vm *catalog.VMDisk
		if p.img.VM != nil {
			c := *p.img.VM
			vm, p.img.VM = &c, &c
		}
		for i, plan := range p.deltas {
			name := fmt.Sprintf("delta-%d.vcdiff", i)
			d, note, err := r.makeDelta(ctx, plan, dir, name)
			if errors.Is(err, delta.ErrMismatch) && p.req.OpenRoot != nil {
				// The root is not what its recorded digest says.
				return nil, cleanup, fmt.Errorf("%w: %s: %w (nothing was published)", ErrSourceChanged, plan.path, err)
			}
			if err != nil {
				return nil, cleanup, fmt.Errorf("%w (nothing was published)", err)
			}
			res := &p.res.Deltas[i]
			res.Note = note
			if d == nil {
				continue
			}
			fp := p.img.Fingerprint
			if plan.kind == catalog.RootQCOW2 && vm != nil {
				vm.Deltas, fp = append(vm.Deltas, *d), vm.Fingerprint
			} else {
				p.img.Deltas = append(p.img.Deltas, *d)
			}
			res.Path, res.Size = catalog.DeltaPath(fp, d.BaseFingerprint, d.File.SHA256), d.File.Size
			p.made.deltas[res.Path] = filepath.Join(dir, name)
		}
	}
	uploads, err = uploadsFor(p.req, p.img, p.made)
	return uploads, cleanup, err
}

// uploadsFor maps the image's files (catalog.Image.Files) to the local
// files of the request and to the files the publish made.
func uploadsFor(req PublishRequest, img catalog.Image, m made) ([]upload, error) {
	var out []upload
	for _, f := range img.Files() {
		u := upload{key: f.Path, ref: f.FileRef}
		switch f.Role {
		case catalog.RoleMetadata:
			u.path = req.MetadataPath
		case catalog.RoleRoot:
			u.path, u.parts, u.open = req.RootPath, req.RootPartSHA256, req.OpenRoot
		case catalog.RoleVMDisk:
			u.path, u.parts = req.VMDiskPath, req.VMDiskPartSHA256
		case catalog.RoleProfile:
			u.path = req.ProfilePaths[f.Name]
		case catalog.RoleSBOM:
			u.path = req.SBOMPath
		case catalog.RoleDelta:
			u.path, u.made = m.deltas[f.Path], true
		case catalog.RoleProvenance:
			u.name, u.made = "the provenance statement", true
			u.open = func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(m.provenance)), nil }
		}
		if u.path == "" && u.name == "" {
			return nil, fmt.Errorf("%s: no local file given", strings.TrimSpace(roleNames[f.Role]+" "+f.Name))
		}
		if u.name == "" {
			u.name = u.path
		}
		u.refused = func(err error) error {
			return fmt.Errorf("upload %s: %w: %s (or it was corrupted in transit): %w", u.key, ErrSourceChanged, u.name, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// roleNames name the files of an image in errors.
var roleNames = map[catalog.FileRole]string{
	catalog.RoleMetadata: "metadata", catalog.RoleRoot: "root", catalog.RoleVMDisk: "VM disk",
	catalog.RoleProfile: "profile", catalog.RoleSBOM: "SBOM", catalog.RoleDelta: "delta", catalog.RoleProvenance: "provenance",
}

// upload sends the files, the root first (the big file, the one most
// likely to fail its check), announcing right before the first becomes
// visible, so a file that is not what the request says (a stale build
// record) stops the publish with nothing stored and the catalog
// untouched.
func (p *publishPlan) upload(ctx context.Context, t *txn, uploads []upload) error {
	sent := make([]bool, len(uploads))
	order := []int{1, 0}
	for i := 2; i < len(uploads); i++ {
		order = append(order, i)
	}
	for _, i := range order {
		var err error
		if sent[i], err = t.upload(ctx, uploads[i], p.req.Progress); err != nil {
			return err
		}
	}
	resent, err := t.settle(ctx, p.req.Progress)
	if err != nil {
		return err
	}
	for i, u := range uploads {
		sent[i] = sent[i] || resent[u.key]
	}
	p.res.Files = filesOf(uploads, sent)
	return nil
}

// commit commits the version, listing each delta only if its base is
// still in the catalog being written.
func (p *publishPlan) commit(ctx context.Context, t *txn) (*PublishResult, error) {
	var final catalog.AddResult
	var notes map[string]string
	st, err := t.commit(ctx, func(c *catalog.Catalog) error {
		im, dropped := fitDeltas(c, p.img) // a base may have left meanwhile
		a, err := c.Add(im)
		final, notes = a, dropped
		return err
	})
	res := p.res
	res.Retries = t.retries
	if !t.committed {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("image committed, but %w", err)
	}
	if prod := st.Catalog.Products[p.add.Product]; prod != nil {
		res.Aliases = prod.AliasList()
	}
	res.ProductCreated, res.AliasesAdded = final.ProductCreated || p.add.ProductCreated, final.AliasesAdded
	for i := range res.Deltas {
		d := &res.Deltas[i]
		switch {
		case d.Path == "": // not made: its note says why
		case notes[d.Base] != "":
			d.Note = notes[d.Base]
		case !final.DeltaAdded:
			d.Note = "not listed: another publisher published this version first"
		default:
			d.Listed = true
		}
	}
	return res, nil
}
