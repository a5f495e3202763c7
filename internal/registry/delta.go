package registry

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/delta"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
)

// DeltaResult says what Publish did about the delta from the previous
// version.
type DeltaResult struct {
	// Base is the version key the delta starts from; BaseFingerprint its
	// image.
	Base            string `json:"base"`
	BaseFingerprint string `json:"base_fingerprint"`
	// Path and Size describe the delta file (empty in a dry run, which
	// does not encode it).
	Path string `json:"path,omitempty"`
	Size int64  `json:"size,omitempty"`
	// Listed is true when the catalog lists the delta with the new version.
	Listed bool `json:"listed"`
	// Note explains a delta that was not made or not listed.
	Note string `json:"note,omitempty"`
}

// deltaPlan is the delta a publish makes: from version base (image
// baseImg) of the product to the image being published.
type deltaPlan struct {
	base    string
	baseImg catalog.VersionImage
}

// planDelta decides whether publishing img (a new version of its product
// in c, the catalog before the image is added) makes a delta: only for a
// squashfs root whose product has a previous squashfs version, unless
// disabled. A delta needed but impossible (no xdelta3) is an error, before
// anything is written.
func planDelta(c *catalog.Catalog, img catalog.Image, noDelta bool) (*deltaPlan, error) {
	if noDelta || img.Delta != nil || img.RootKind != catalog.RootSquashfs {
		return nil, nil
	}
	base, vi, ok := c.DeltaBase(img.ProductKey(), catalog.VersionKey(img.Created))
	if !ok {
		return nil, nil
	}
	if err := delta.Available(); err != nil {
		return nil, fmt.Errorf("%w; it makes the delta from version %s that clients refresh with: install it, or publish without a delta (--no-delta)", err, base)
	}
	return &deltaPlan{base: base, baseImg: vi}, nil
}

// makeDelta fetches the base root from the store into dir (checking its
// digest), encodes the delta from it to the local root and checks that
// decoding gives the root byte for byte. It returns the delta and its
// local file; a base that cannot be read intact yields no delta and a note
// (the publish goes on without one).
func (r *Registry) makeDelta(ctx context.Context, plan *deltaPlan, img catalog.Image, rootPath, dir string) (*catalog.Delta, string, string, error) {
	basePath := filepath.Join(dir, "base.squashfs")
	note, err := r.fetchVerified(ctx, plan.baseImg.Root, basePath)
	if err != nil || note != "" {
		return nil, "", note, err
	}
	out := filepath.Join(dir, "delta.vcdiff")
	res, err := delta.Make(ctx, basePath, rootPath, out, img.Root.SHA256)
	if err != nil {
		return nil, "", "", fmt.Errorf("delta from version %s: %w", plan.base, err)
	}
	_ = os.Remove(basePath)
	d := &catalog.Delta{Base: plan.base, BaseFingerprint: plan.baseImg.Fingerprint, File: catalog.FileRef{SHA256: res.SHA256, Size: res.Size}}
	return d, out, "", nil
}

// fetchVerified streams a stored file into path and checks its size and
// digest. A missing or damaged file is reported as a note, not an error.
func (r *Registry) fetchVerified(ctx context.Context, it catalog.Item, path string) (note string, err error) {
	rc, _, err := r.Store.Get(ctx, it.Path)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Sprintf("no delta: the base root %s is not in the store (run `publish verify`)", it.Path), nil
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
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(f, h), store.ContextReader(ctx, rc), make([]byte, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", it.Path, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if got := digest.Hex(h); n != it.Size || got != it.SHA256 {
		return fmt.Sprintf("no delta: the base root %s is damaged (%d bytes, sha256 %s; the catalog says %d, %s): run `publish verify`", it.Path, n, got, it.Size, it.SHA256), nil
	}
	return "", nil
}

// fitDelta returns img as it can be added to c: without its delta when
// the delta's base is no longer in the catalog (removed or pruned while
// this publish ran), with the reason.
func fitDelta(c *catalog.Catalog, img catalog.Image) (catalog.Image, string) {
	d := img.Delta
	if d == nil {
		return img, ""
	}
	if p := c.Products[img.ProductKey()]; p != nil {
		if v := p.Versions[d.Base]; v != nil {
			for _, vi := range v.Images() {
				if vi.Fingerprint == d.BaseFingerprint && vi.Kind == catalog.RootSquashfs {
					return img, ""
				}
			}
		}
	}
	img.Delta = nil
	return img, fmt.Sprintf("not listed: its base version %s left the catalog during the publish", d.Base)
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
			v := p.Versions[vk]
			var target *catalog.VersionImage
			for _, vi := range v.Images() {
				if vi.Kind == catalog.RootSquashfs {
					target = &vi
					break
				}
			}
			ds := v.Deltas()
			for _, ik := range slices.Sorted(maps.Keys(ds)) {
				it := ds[ik]
				base := p.Versions[it.DeltaBase]
				if base == nil || target == nil {
					continue // a catalog problem already
				}
				var baseRoot *catalog.Item
				for _, vi := range base.Images() {
					if vi.Kind == catalog.RootSquashfs {
						baseRoot = &vi.Root
						break
					}
				}
				if baseRoot == nil {
					continue
				}
				where := fmt.Sprintf("%s version %s item %s", pk, vk, ik)
				problem, err := r.decodeDelta(ctx, dir, *baseRoot, it, *target)
				if err != nil {
					return err
				}
				rep.DeltasDecoded++
				if problem != "" {
					rep.problem("%s: %s", where, problem)
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
		it   catalog.Item
		path string
	}{{baseRoot, basePath}, {it, deltaPath}} {
		note, err := r.fetchVerified(ctx, f.it, f.path)
		if err != nil {
			return "", err
		}
		if note != "" {
			return "cannot decode: " + strings.TrimPrefix(note, "no delta: "), nil
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
