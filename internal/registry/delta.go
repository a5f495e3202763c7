package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/delta"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
)

// DefaultDeltaDepth is how many of a product's last versions a new
// version gets a delta from unless told otherwise (publish
// --delta-depth): a host that skipped up to DefaultDeltaDepth-1 releases
// still refreshes with a delta.
const DefaultDeltaDepth = 3

// DeltaResult says what Publish did about the delta from one older
// version.
type DeltaResult struct {
	// FType is the delta's: squashfs.vcdiff (to the root) or
	// disk-kvm.img.vcdiff (to the VM disk).
	FType string `json:"ftype"`
	// Base is the version key the delta names as its delta_base (a VM
	// delta names the version's anchor, K-vm); BaseFingerprint is the
	// image it starts from.
	Base            string `json:"base"`
	BaseFingerprint string `json:"base_fingerprint"`
	// Path and Size describe the delta file (empty in a dry run, which
	// does not encode it, and for a delta not published).
	Path string `json:"path,omitempty"`
	Size int64  `json:"size,omitempty"`
	// Listed is true when the catalog lists the delta with the new version.
	Listed bool `json:"listed"`
	// Note explains a delta that was not made or not listed.
	Note string `json:"note,omitempty"`
}

// deltaPlan is one delta a publish makes: from base to the image's root
// of kind, whose local file is path.
type deltaPlan struct {
	kind catalog.RootKind
	base catalog.DeltaBase
	path string
	ref  catalog.FileRef
}

// planDeltas decides which deltas publishing img (a new version of its
// product in c, the catalog before the image is added) makes: to its
// root and to its VM disk, one from each of the product's last depth
// versions with an image of that kind (catalog.DeltaBases). Deltas needed
// but impossible (no xdelta3) are an error, before anything is written.
func planDeltas(c *catalog.Catalog, req PublishRequest, img catalog.Image, depth int) ([]deltaPlan, error) {
	pk, vk := img.ProductKey(), catalog.VersionKey(img.Created)
	var plans []deltaPlan
	add := func(kind catalog.RootKind, path string, ref catalog.FileRef) {
		for _, b := range c.DeltaBases(pk, vk, kind, depth) {
			plans = append(plans, deltaPlan{kind: kind, base: b, path: path, ref: ref})
		}
	}
	if len(img.Deltas) == 0 {
		add(img.RootKind, req.RootPath, img.Root)
	}
	if img.VM != nil && len(img.VM.Deltas) == 0 {
		add(catalog.RootQCOW2, req.VMDiskPath, img.VM.Disk)
	}
	if len(plans) == 0 {
		return nil, nil
	}
	if err := delta.Available(); err != nil {
		return nil, fmt.Errorf("%w; it makes the delta from version %s that clients refresh with: install it, or publish without deltas (--no-delta)", err, plans[0].base.Version)
	}
	return plans, nil
}

// maxDeltaShare is the largest delta worth publishing, as a share of the
// root: a client downloading a bigger one saves too little over the root.
const maxDeltaShare = 0.5

// makeDelta fetches the base root of plan from the store into dir
// (checking its digest), encodes the delta from it to the local root as
// dir/name and checks that decoding gives the root byte for byte. It
// returns the delta; a base that cannot be read intact, or a delta larger
// than half the root, yields none and a note (the publish goes on
// without it).
func (r *Registry) makeDelta(ctx context.Context, plan deltaPlan, dir, name string) (*catalog.Delta, string, error) {
	basePath := filepath.Join(dir, "base")
	defer os.Remove(basePath)
	switch wrong, err := r.fetchChecked(ctx, plan.base.Image.Root, basePath); {
	case err != nil:
		return nil, "", err
	case wrong != "":
		return nil, fmt.Sprintf("no delta: the base root %s %s", plan.base.Image.Root.Path, wrong), nil
	}
	out := filepath.Join(dir, name)
	res, err := delta.Make(ctx, basePath, plan.path, out, plan.ref.SHA256)
	if err != nil {
		return nil, "", fmt.Errorf("delta from version %s: %w", plan.base.Version, err)
	}
	if float64(res.Size) > maxDeltaShare*float64(plan.ref.Size) {
		_ = os.Remove(out)
		return nil, fmt.Sprintf("not published: %d bytes, more than half the root (%d bytes): a client would save too little over downloading the root", res.Size, plan.ref.Size), nil
	}
	return &catalog.Delta{Base: plan.base.Version, BaseFingerprint: plan.base.Image.Fingerprint, File: catalog.FileRef{SHA256: res.SHA256, Size: res.Size}}, "", nil
}

// fetchChecked streams the stored file of it into path and checks its
// size and digest against the catalog's. A file missing from the store or
// damaged is not an error: what is wrong with it comes back as a phrase
// to follow the file's name ("is not in the store (run `publish
// verify`)"); "" when the file is whole.
func (r *Registry) fetchChecked(ctx context.Context, it catalog.Item, path string) (wrong string, err error) {
	rc, _, err := r.Store.Get(ctx, it.Path)
	if errors.Is(err, store.ErrNotFound) {
		return "is not in the store (run `publish verify`)", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", it.Path, err)
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := digest.New()
	n, err := io.CopyBuffer(io.MultiWriter(f, h), store.ContextReader(ctx, rc), make([]byte, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", it.Path, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if got := digest.Hex(h); n != it.Size || got != it.SHA256 {
		return fmt.Sprintf("is damaged (%d bytes, sha256 %s; the catalog says %d, %s): run `publish verify`", n, got, it.Size, it.SHA256), nil
	}
	return "", nil
}

// fitDeltas returns img as it can be added to c: without the deltas
// whose base is no longer in the catalog (removed or pruned while this
// publish ran), and the reason by delta_base.
func fitDeltas(c *catalog.Catalog, img catalog.Image) (catalog.Image, map[string]string) {
	notes := map[string]string{}
	p := c.Products[img.ProductKey()]
	fit := func(deltas []catalog.Delta) []catalog.Delta {
		return slices.DeleteFunc(slices.Clone(deltas), func(d catalog.Delta) bool {
			if p != nil && p.Versions[d.Base] != nil {
				return false
			}
			notes[d.Base] = fmt.Sprintf("not listed: its base version %s left the catalog during the publish", d.Base)
			return true
		})
	}
	img.Deltas = fit(img.Deltas)
	if img.VM != nil {
		vm := *img.VM
		vm.Deltas = fit(vm.Deltas)
		img.VM = &vm
	}
	return img, notes
}

// verifyDeltas decodes every delta whose base is in the catalog against
// the base's root, as a client does, and checks that the metadata followed
// by the result has the version's fingerprint. Damage found by the plain
// checks (a missing or wrong file) is not reported twice.
func (r *Registry) verifyDeltas(ctx context.Context, c *catalog.Catalog, rep *VerifyReport) error {
	dir, err := os.MkdirTemp("", "publish-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, pk := range c.ProductKeys() {
		p := c.Products[pk]
		for _, vk := range p.VersionKeys() {
			ds := p.Versions[vk].Deltas()
			for _, ik := range slices.Sorted(maps.Keys(ds)) {
				it := ds[ik]
				base, target, ok := p.DeltaImages(vk, it)
				if !ok {
					continue // a catalog problem already
				}
				problem, err := r.decodeDelta(ctx, dir, base.Root, it, target)
				if err != nil {
					return err
				}
				rep.DeltasDecoded++
				if problem != "" {
					rep.problem("%s version %s item %s: %s", pk, vk, ik, problem)
				}
			}
		}
	}
	return nil
}

// decodeDelta fetches base root and delta, decodes, and returns what is
// wrong ("" when the result has the target's fingerprint).
func (r *Registry) decodeDelta(ctx context.Context, dir string, baseRoot, it catalog.Item, target catalog.VersionImage) (string, error) {
	basePath, deltaPath := filepath.Join(dir, "base"), filepath.Join(dir, "delta")
	defer os.Remove(basePath)
	defer os.Remove(deltaPath)
	for _, f := range []struct {
		what string
		it   catalog.Item
		path string
	}{{"the base root", baseRoot, basePath}, {"the delta", it, deltaPath}} {
		wrong, err := r.fetchChecked(ctx, f.it, f.path)
		if err != nil {
			return "", err
		}
		if wrong != "" {
			return fmt.Sprintf("cannot decode: %s %s %s", f.what, f.it.Path, wrong), nil
		}
	}
	combined := digest.NewFingerprint()
	rc, _, err := r.Store.Get(ctx, target.Meta.Path)
	if err != nil {
		return fmt.Sprintf("cannot decode: %v", err), nil
	}
	_, err = io.Copy(combined, store.ContextReader(ctx, rc))
	rc.Close()
	if err != nil {
		return "", fmt.Errorf("read %s: %w", target.Meta.Path, err)
	}
	got, _, err := delta.Decode(ctx, basePath, deltaPath, combined)
	switch {
	case errors.Is(err, delta.ErrMismatch):
		return fmt.Sprintf("%s does not decode against %s: %v", it.Path, baseRoot.Path, err), nil
	case err != nil:
		return "", err
	case got != target.Root.SHA256:
		return fmt.Sprintf("%s decoded against %s gives sha256 %s, not the root %s (Incus refuses the refreshed image)", it.Path, baseRoot.Path, got, target.Root.SHA256), nil
	}
	if fp := combined.Hex(); fp != target.Fingerprint {
		return fmt.Sprintf("%s decoded gives fingerprint %s, want %s", it.Path, fp, target.Fingerprint), nil
	}
	return "", nil
}
