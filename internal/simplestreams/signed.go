package simplestreams

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/signing"
)

// A signed source is read through its signatures only, as the reference
// client reads one with --keyring: streams/v1/index.sjson, whose entries
// name the signed products files (X.sjson), each OpenPGP clear-signed by a
// key of the keyring (signing.Keyring.Verify). The unsigned .json files
// are never read. Two kinds of signed trees are read:
//
//   - this registry's (a signed registry, catalog/stamp.go): the index and
//     every products file carry a catalog.Stamp, and each index entry the
//     sha256 of the products file it names (registry_sha256): a products
//     file must be the one the signed index names (no mix of an index and
//     products files of different moments), and nothing past its expiry
//     is taken;
//   - other publishers' (cloud-images.ubuntu.com, images.linuxcontainers.org),
//     signed with gpg --clearsign, carrying none of this registry's
//     fields (SimpleStreams' own "updated" at most). They carry no
//     expiry; the signature's key must be valid.
//
// A products file of either kind must have the content_id of its entry.

// signed reads a source's documents through their signatures.
type signed struct {
	src Source
	kr  *signing.Keyring
	now time.Time
	// ours: the index carries this registry's stamp (the tree is a signed
	// registry's); sums are then the digests of the products files by
	// entry.
	ours bool
	sums map[string]string
	// signers are the keys that signed the documents read.
	signers map[signing.Fingerprint]bool
}

func newSigned(src Source, trust Trust) *signed {
	now := trust.Now
	if now.IsZero() {
		now = time.Now()
	}
	return &signed{src: src, kr: trust.Keyring, now: now, signers: map[signing.Fingerprint]bool{}}
}

// verify reads the signed document at path (up to limit bytes) and
// returns its verified text and the sha256 of the bytes read.
func (d *signed) verify(ctx context.Context, path string, limit int64) ([]byte, [sha256.Size]byte, error) {
	raw, err := readJSON(ctx, d.src, path, limit)
	if err != nil {
		return nil, [sha256.Size]byte{}, err
	}
	sum := sha256.Sum256(raw)
	v, err := d.kr.Verify(raw, d.now)
	if err != nil {
		return nil, sum, fmt.Errorf("%s: %w", path, err)
	}
	d.signers[v.Signer] = true
	return v.Body, sum, nil
}

// index reads index.sjson and returns the index it signs with each
// entry's path naming the products file itself (catalog.Index.Unsigned);
// products reads that file's signed form.
func (d *signed) index(ctx context.Context) (*catalog.Index, error) {
	body, _, err := d.verify(ctx, catalog.SignedIndexPath, MaxIndexJSON)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("not signed: %s not found (with a keyring only signed sources are read)", catalog.SignedIndexPath)
	}
	if err != nil {
		return nil, err
	}
	signedIx, err := catalog.ParseIndex(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", catalog.SignedIndexPath, err)
	}
	ix, err := signedIx.Unsigned()
	if err != nil || !ix.Stamp.Registry() {
		return ix, err // an error, or another publisher's tree
	}
	if err := d.checkStamp(catalog.SignedIndexPath, ix.Stamp); err != nil {
		return nil, err
	}
	d.ours, d.sums = true, map[string]string{}
	for name, e := range ix.Index {
		d.sums[name] = e.SHA256
	}
	return ix, nil
}

func (d *signed) products(ctx context.Context, name string, e catalog.IndexEntry) ([]byte, [sha256.Size]byte, error) {
	path := catalog.SignedPath(e.Path)
	body, sum, err := d.verify(ctx, path, MaxJSON)
	if err != nil || !d.ours {
		return body, sum, err
	}
	want := d.sums[name]
	if want == "" {
		return nil, sum, fmt.Errorf("%s: entry %q binds no products file (no registry_sha256)", catalog.SignedIndexPath, name)
	}
	if got := sha256.Sum256(body); hex.EncodeToString(got[:]) != want {
		return nil, sum, fmt.Errorf("%s is not the products file the signed index names (sha256 %x, the index's registry_sha256 %s): an index and a products file of different moments", path, got, want)
	}
	return body, sum, nil
}

// check refuses a products file whose content_id is not its entry's (a
// signed products file of another catalog, or of another entry) and, in
// a signed registry's tree, one whose stamp is incomplete or expired.
func (d *signed) check(name string, e catalog.IndexEntry, f *catalog.Catalog) error {
	path := catalog.SignedPath(e.Path)
	if f.ContentID != name {
		return fmt.Errorf("%s: content_id %q is not the one the signed index names (%q)", path, f.ContentID, name)
	}
	if !d.ours {
		return nil
	}
	return d.checkStamp(path, f.Stamp)
}

// signedBy lists the keys that signed the documents read.
func (d *signed) signedBy() []signing.Fingerprint {
	return slices.Sorted(maps.Keys(d.signers))
}

// checkStamp refuses a document of a signed registry's tree whose stamp
// is incomplete, or that has expired.
func (d *signed) checkStamp(path string, st catalog.Stamp) error {
	if err := st.Check(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if expires, _ := st.ExpiresAt(); !d.now.Before(expires) {
		return fmt.Errorf("%s expired at %s: the source has not been re-signed since", path, st.Expires)
	}
	return nil
}
