package registry

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/delta"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/signing"
	"github.com/incus-appliance/registry/internal/store"
)

// Orphan is a stored image file that the catalog does not reference.
type Orphan struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// Reason says why it is there: retired (left the catalog), pending (a
	// publish in flight), or unreferenced (an interrupted upload).
	Reason string `json:"reason"`
}

// VerifyOptions control VerifyWith.
type VerifyOptions struct {
	// Deep also decodes every delta against its base (needs xdelta3) and
	// checks that the result is the version's root: the image fingerprint
	// Incus will compute after applying it.
	Deep bool
	// Strict turns the catalog's warnings (an image without an lxd.tar.xz
	// item, a version shell) into problems.
	Strict bool
	// NoFiles checks the referenced files' presence and size from one
	// listing of images/ instead of reading and hashing them (a quick check
	// of a large registry; combined fingerprints are not checked).
	NoFiles bool
	// Keyring, when set, checks the signed catalog with it
	// (verify_signed.go); without it the signatures are not checked.
	Keyring *signing.Keyring
}

// VerifyReport is the outcome of Verify. The registry is sound when
// Problems is empty; Warnings and Orphans are informational.
type VerifyReport struct {
	// Images and Files count the images (container and VM) and the
	// distinct files checked.
	Images int `json:"images"`
	Files  int `json:"files"`
	// DeltasDecoded counts deltas decoded and checked (Deep only).
	DeltasDecoded int `json:"deltas_decoded"`
	// BytesChecked counts the bytes read and hashed (none with NoFiles).
	BytesChecked int64 `json:"bytes_checked"`
	// Problems are what clients would hit; Warnings what is imperfect but
	// harmless to them.
	Problems []string `json:"problems"`
	Warnings []string `json:"warnings"`
	// Orphans are stored image files nothing references.
	Orphans []Orphan `json:"orphans"`
	// Signed are the signed catalog documents checked (with a keyring).
	Signed []SignedDocument `json:"signed,omitempty"`
}

// OK reports whether no problem was found.
func (v *VerifyReport) OK() bool { return len(v.Problems) == 0 }

func (v *VerifyReport) problem(format string, args ...any) {
	v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
}

// Verify checks the registry as clients will use it: both JSON files parse
// and agree (index.json lists every product of images.json), the catalog
// has no problem clients would hit (catalog.Problems), every referenced
// file exists with the right size and sha256, and every combined
// fingerprint equals sha256(metadata bytes followed by root bytes), and
// each provenance statement's subjects are the version's files. It also
// reports orphan files. Deltas are checked like every file (size, sha256)
// and for a delta_base that is an older squashfs version of the product
// (catalog.Problems). The error is for failures that stop verification
// itself (the store is unreachable).
func (r *Registry) Verify(ctx context.Context) (*VerifyReport, error) {
	return r.VerifyWith(ctx, VerifyOptions{})
}

// VerifyWith is Verify with options.
func (r *Registry) VerifyWith(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	if opts.Deep {
		if err := delta.Available(); err != nil {
			return nil, fmt.Errorf("--deep decodes every delta: %w", err)
		}
	}
	rep := &VerifyReport{Problems: []string{}, Warnings: []string{}, Orphans: []Orphan{}}
	root, found, err := verifyRead(ctx, r, catalog.ImagesPath, catalog.Parse, rep)
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, fmt.Errorf("no registry here: %s does not exist", catalog.ImagesPath)
	case root == nil:
		return rep, nil
	}
	l := layout{Layout: root.Layout()}
	files, err := r.readFiles(ctx, l, root)
	if err != nil {
		rep.problem("%v", err)
		return rep, nil
	}
	problems, warnings := l.Problems(root, files, r.now())
	rep.Problems = append(rep.Problems, problems...)
	if opts.Strict {
		rep.Problems = append(rep.Problems, warnings...)
	} else {
		rep.Warnings = append(rep.Warnings, warnings...)
	}
	if err := r.verifyIndex(ctx, l, files, rep); err != nil {
		return nil, err
	}
	if err := r.verifySignatures(ctx, l, opts.Keyring, rep); err != nil {
		return nil, err
	}
	c := l.Whole(root, files)
	objs, err := r.Store.List(ctx, catalog.ImagesDir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", catalog.ImagesDir, err)
	}
	if opts.NoFiles {
		listedFiles(c, objs, rep)
	} else if err := r.verifyFiles(ctx, c, rep); err != nil {
		return nil, err
	} else if err := r.verifyProvenance(ctx, c, rep); err != nil {
		return nil, err
	}
	if opts.Deep {
		if err := r.verifyDeltas(ctx, c, rep); err != nil {
			return nil, err
		}
	}
	unsatisfied(c, rep)
	findOrphans(c, objs, rep)
	foreignChanges(rep)
	return rep, nil
}

// verifyRead reads catalog file key and parses it. A file that does not
// parse is a problem of the report, and v is nil; found is false for a
// missing file.
func verifyRead[T any](ctx context.Context, r *Registry, key string, parse func([]byte) (*T, error), rep *VerifyReport) (v *T, found bool, err error) {
	data, _, err := r.readObject(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if v, err = parse(data); err != nil {
		rep.problem("%v", err)
	}
	return v, true, nil
}

// verifyIndex checks index.json against the product files: one
// image-downloads entry per file, listing every product of it (and, with
// several files, the alias claims it backs), and every file still
// carrying registry_state.
func (r *Registry) verifyIndex(ctx context.Context, l layout, files []*catalog.Catalog, rep *VerifyReport) error {
	now := r.now()
	for i, key := range l.Files() {
		if c := files[i]; c.State == nil && len(c.Products) > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s has no registry_state: another tool (e.g. incus-simplestreams) rewrote it after publish's last commit, "+
				"so the retirement times of files that left the catalog are lost; prune treats every unreferenced file as retired now and waits the full grace", key))
		}
	}
	ix, found, err := verifyRead(ctx, r, catalog.IndexPath, catalog.ParseIndex, rep)
	if !found && err == nil {
		rep.problem("%s is missing: clients cannot find any image", catalog.IndexPath)
	}
	if ix == nil || err != nil {
		return err
	}
	entries := ix.Entries()
	for i, key := range l.Files() {
		c := files[i]
		e, ok := entries[key]
		switch {
		case !ok:
			rep.problem("%s has no entry for %s: clients do not see its %d products", catalog.IndexPath, key, len(c.Products))
			continue
		case e.DataType != catalog.DataTypeImages || e.Format != catalog.FormatProducts:
			rep.problem("%s: entry for %s has datatype %q and format %q, want %q and %q", catalog.IndexPath, key, e.DataType, e.Format, catalog.DataTypeImages, catalog.FormatProducts)
		case len(c.Products) > 0 && len(e.Products) == 0:
			rep.problem("%s lists no products of %s: clients see none of its images", catalog.IndexPath, key)
		}
		checkListed(rep, e.Products, c, key)
		if want := l.Entry(c, key, now).Aliases; !slices.Equal(e.Aliases, want) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: the alias claims of %s are not the aliases it holds (an interrupted command; the next change to that file, or a publish needing one of them, repairs it)", catalog.IndexPath, key))
		}
	}
	return nil
}

// checkListed compares the products an index entry lists with those of
// catalog file path: one it lacks is a problem (clients may not see it),
// one it lists that the file has neither as product nor as publish in
// flight is a warning.
func checkListed(rep *VerifyReport, listed []string, c *catalog.Catalog, path string) {
	for _, pk := range c.ProductKeys() {
		if !slices.Contains(listed, pk) {
			rep.problem("%s does not list product %s of %s", catalog.IndexPath, pk, path)
		}
	}
	pending := map[string]bool{}
	if c.State != nil {
		for _, p := range c.State.Pending {
			pending[p.Product] = true
		}
	}
	for _, p := range listed {
		if c.Products[p] == nil && !pending[p] {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s lists product %s that %s no longer has (an interrupted remove; the next publish tidies it)", catalog.IndexPath, p, path))
		}
	}
}

// fileSum is a file's digest and size as read from the store.
type fileSum struct {
	sha  string
	size int64
	err  error
}

func (r *Registry) verifyFiles(ctx context.Context, c *catalog.Catalog, rep *VerifyReport) error {
	sums := map[string]fileSum{}
	// read hashes an object into its own digest and, when combined is not
	// nil, into combined too.
	read := func(key string, combined hash.Hash) (fileSum, error) {
		rc, _, err := r.Store.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidKey) {
			return fileSum{err: err}, nil
		}
		if err != nil {
			return fileSum{}, fmt.Errorf("read %s: %w", key, err)
		}
		defer rc.Close()
		h := digest.New()
		var w io.Writer = h
		if combined != nil {
			w = io.MultiWriter(h, combined)
		}
		n, err := io.CopyBuffer(w, rc, make([]byte, 1<<20))
		if err != nil {
			return fileSum{}, fmt.Errorf("read %s: %w", key, err)
		}
		rep.BytesChecked += n
		s := fileSum{sha: digest.Hex(h), size: n}
		if _, seen := sums[key]; !seen {
			rep.Files++
		}
		sums[key] = s
		return s, nil
	}
	check := func(where string, it catalog.Item, s fileSum) {
		switch {
		case s.err != nil:
			rep.problem("%s: %s is missing: %v", where, it.Path, s.err)
		case s.size != it.Size:
			rep.problem("%s: %s has %d bytes, the catalog says %d", where, it.Path, s.size, it.Size)
		case s.sha != it.SHA256:
			rep.problem("%s: %s has sha256 %s, the catalog says %s", where, it.Path, s.sha, it.SHA256)
		}
	}
	for _, pk := range c.ProductKeys() {
		p := c.Products[pk]
		for _, vk := range p.VersionKeys() {
			v := p.Versions[vk]
			where := pk + " version " + vk
			for _, vi := range v.Images() {
				rep.Images++
				combined := digest.NewFingerprint()
				ms, err := read(vi.Meta.Path, combined)
				if err != nil {
					return err
				}
				rs := fileSum{err: ms.err}
				if ms.err == nil {
					if rs, err = read(vi.Root.Path, combined); err != nil {
						return err
					}
				}
				check(where, vi.Meta, ms)
				check(where, vi.Root, rs)
				if ms.err == nil && rs.err == nil {
					if got := combined.Hex(); got != vi.Fingerprint {
						rep.problem("%s: combined sha256 of %s + %s is %s, but the catalog's fingerprint is %s: Incus rejects it (\"Image fingerprint doesn't match\")", where, vi.Meta.Path, vi.Root.Path, got, vi.Fingerprint)
					}
				}
			}
			for _, ik := range slices.Sorted(maps.Keys(v.Items)) {
				it := v.Items[ik]
				s, ok := sums[it.Path]
				if !ok {
					var err error
					if s, err = read(it.Path, nil); err != nil {
						return err
					}
				}
				check(where+" item "+ik, it, s)
			}
		}
	}
	return nil
}

func findOrphans(c *catalog.Catalog, objs []store.ObjectInfo, rep *VerifyReport) {
	refs := c.Referenced()
	pending := map[string]bool{}
	var retired map[string]time.Time
	if c.State != nil {
		retired = c.State.Retired
		for _, p := range c.State.Pending {
			for _, path := range p.Paths {
				pending[path] = true
			}
		}
	}
	for _, o := range objs {
		if refs[o.Key] {
			continue
		}
		reason := untrackedReason
		if t, ok := retired[o.Key]; ok {
			reason = "retired at " + t.Format(time.RFC3339) + "; prune deletes it after the grace period"
		} else if pending[o.Key] {
			reason = "pending: a publish in flight is uploading it"
		}
		rep.Orphans = append(rep.Orphans, Orphan{Path: o.Key, Size: o.Size, Reason: reason})
	}
}
