package simplestreams

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/signing"
)

// A signed source is read through its signatures only, as the reference
// client reads one with --keyring: streams/v1/index.sjson, whose entries
// name the signed products files (X.sjson), each OpenPGP clear-signed by a
// key of the keyring. The unsigned .json files are never read. Two kinds
// of signed trees are read:
//
//   - this registry's (a signed registry): every signed document carries a
//     stamp (updated, registry_serial, registry_expires) and each index
//     entry the sha256 of the products file it names (registry_sha256):
//     a products file must be the one the signed index names (no mix of
//     an index and products files of different moments), and nothing
//     past its expiry is taken;
//   - other publishers' (cloud-images.ubuntu.com, images.linuxcontainers.org),
//     signed with gpg --clearsign, with no extra fields: a products file
//     must be the one its index entry names (its content_id is the
//     entry's key). They carry no expiry; the signature's key must be
//     valid.
//
// A products file of either kind must have the content_id of its entry.

// signedIndexPath is where a signed source's index is.
const signedIndexPath = "streams/v1/index.sjson"

// stamp is what this registry's signed documents carry besides their
// content.
type stamp struct {
	Updated string `json:"updated"`
	Serial  int64  `json:"registry_serial"`
	Expires string `json:"registry_expires"`
}

// stampedIndex is a signed index's stamp and the digests its entries
// bind.
type stampedIndex struct {
	stamp
	Index map[string]struct {
		SHA256 string `json:"registry_sha256"`
	} `json:"index"`
}

// signed reads a source's documents through their signatures.
type signed struct {
	src Source
	kr  *signing.Keyring
	now time.Time
	// sums, for a stamped index (this registry's tree), are the digests
	// of the products files by entry; nil for another publisher's tree.
	sums map[string]string
	// Signers are the keys that signed the documents read.
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

func (d *signed) index(ctx context.Context) (*catalog.Index, error) {
	body, _, err := d.verify(ctx, signedIndexPath, MaxIndexJSON)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("not signed: %s not found (with a keyring only signed sources are read)", signedIndexPath)
	}
	if err != nil {
		return nil, err
	}
	ix, err := catalog.ParseIndex(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", signedIndexPath, err)
	}
	var st stampedIndex
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", signedIndexPath, err)
	}
	if st.Serial == 0 && st.Expires == "" {
		return ix, nil // another publisher's tree (which may carry updated)
	}
	if err := d.checkStamp(signedIndexPath, st.stamp); err != nil {
		return nil, err
	}
	d.sums = map[string]string{}
	for name, e := range st.Index {
		d.sums[name] = e.SHA256
	}
	return ix, nil
}

func (d *signed) products(ctx context.Context, name string, e catalog.IndexEntry) ([]byte, [sha256.Size]byte, error) {
	if !strings.HasSuffix(e.Path, ".sjson") {
		return nil, [sha256.Size]byte{}, fmt.Errorf("%s: entry %q names %s, not a signed file (.sjson)", signedIndexPath, name, e.Path)
	}
	body, sum, err := d.verify(ctx, e.Path, MaxJSON)
	if err != nil || d.sums == nil {
		return body, sum, err
	}
	want := d.sums[name]
	if want == "" {
		return nil, sum, fmt.Errorf("%s: entry %q binds no products file (no registry_sha256)", signedIndexPath, name)
	}
	if got := sha256.Sum256(body); hex.EncodeToString(got[:]) != want {
		return nil, sum, fmt.Errorf("%s is not the products file the signed index names (sha256 %x, the index's registry_sha256 %s): an index and a products file of different moments", e.Path, got, want)
	}
	var st stamp
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, sum, fmt.Errorf("%s: %w", e.Path, err)
	}
	return body, sum, d.checkStamp(e.Path, st)
}

// check refuses a products file whose content_id is not its entry's: a
// signed products file of another catalog, or of another entry.
func (d *signed) check(name string, e catalog.IndexEntry, f *catalog.Catalog) error {
	if f.ContentID != name {
		return fmt.Errorf("%s: content_id %q is not the one the signed index names (%q)", e.Path, f.ContentID, name)
	}
	return nil
}

// signedBy lists the keys that signed the documents read.
func (d *signed) signedBy() []signing.Fingerprint {
	return slices.Sorted(maps.Keys(d.signers))
}

// checkStamp refuses a stamped document (this registry's signed tree)
// whose stamp is incomplete, or that has expired.
func (d *signed) checkStamp(path string, st stamp) error {
	if st.Serial < 1 {
		return fmt.Errorf("%s: no registry_serial", path)
	}
	if _, err := time.Parse(time.RFC1123Z, st.Updated); err != nil {
		return fmt.Errorf("%s: updated %q is not an RFC 1123 time", path, st.Updated)
	}
	expires, err := time.Parse(time.RFC3339, st.Expires)
	if err != nil {
		return fmt.Errorf("%s: registry_expires %q is not an RFC 3339 time", path, st.Expires)
	}
	if !d.now.Before(expires) {
		return fmt.Errorf("%s expired at %s: the source has not been re-signed since", path, st.Expires)
	}
	return nil
}
