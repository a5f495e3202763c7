package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/signing"
	"github.com/incus-appliance/registry/internal/store"
)

// DefaultSignatureValidity is how long a signed catalog document stays
// valid when Signing.Validity is 0: a week, so a daily re-sign (`publish
// sign` from cron) that fails for a few days leaves time to notice.
const DefaultSignatureValidity = 7 * 24 * time.Hour

// Signing makes a registry sign its catalog (catalog/stamp.go): every
// catalog document clients read is stamped when written and followed by
// its .sjson, and index.json names the digest of each product file.
type Signing struct {
	Signer *signing.Signer
	// Validity is how long each signed document stays valid
	// (DefaultSignatureValidity when 0).
	Validity time.Duration
}

// ErrSignedRegistry is returned by a change, without a signing key, of a
// registry that is signed: it would leave each .sjson behind its .json.
var ErrSignedRegistry = errors.New("this registry is signed (" + catalog.SignedIndexPath + " exists): changing its catalog needs its signing key (--signing-key FILE or PUBLISH_SIGNING_KEY)")

// seal is what accompanies the catalog writes of a registry, by its kind:
// unsealed (no key) writes nothing more and refuses to change a signed
// registry; sealed stamps each document, follows it with its .sjson and
// puts each product file's digest in index.json.
type seal interface {
	// check refuses a catalog write this registry must not make.
	check(ctx context.Context) error
	// stamp sets the stamp of the next write of its document.
	stamp(st *catalog.Stamp)
	// follow writes what accompanies document key, just written as data
	// with the serial of its stamp.
	follow(ctx context.Context, key string, doc document, data []byte, serial int64) error
	// entry is index entry e with the digest of its product file.
	entry(e catalog.IndexEntry, sum string) catalog.IndexEntry
	// complete reports whether an index entry read from index.json is as
	// this registry writes it.
	complete(e catalog.IndexEntry) bool
	// unsigned reports whether product file key, as read (c), must be
	// signed before index.json names it: it was never signed, does not
	// exist yet, or has no .sjson.
	unsigned(ctx context.Context, key string, c *catalog.Catalog) (bool, error)
}

func (r *Registry) seal() seal {
	if r.Signing == nil {
		return unsealed{r}
	}
	return sealed{r, r.Signing}
}

// document is a catalog file to write: a product file, the root or
// index.json.
type document interface {
	Marshal() []byte
	// stamp is the document's stamp; nil for a document clients never
	// read (the root of several files), which is not signed.
	stamp() *catalog.Stamp
	// signed is what its .sjson signs, given its encoding data.
	signed(data []byte) []byte
}

// productFile is a catalog file as a document: signed byte for byte
// unless it is the root of several files.
type productFile struct{ *catalog.Catalog }

func (d productFile) stamp() *catalog.Stamp {
	if !d.ClientsRead() {
		return nil
	}
	return &d.Stamp
}

func (d productFile) signed(data []byte) []byte { return data }

// indexFile is index.json as a document: index.sjson signs it with its
// entries naming the signed product files.
type indexFile struct{ *catalog.Index }

func (d indexFile) stamp() *catalog.Stamp  { return &d.Stamp }
func (d indexFile) signed(_ []byte) []byte { return d.Signed().Marshal() }

// unsealed is a registry without a signing key.
type unsealed struct{ r *Registry }

// check refuses to change a signed registry.
func (u unsealed) check(ctx context.Context) error {
	signed, err := u.r.isSigned(ctx)
	if err == nil && signed {
		return ErrSignedRegistry
	}
	return err
}

func (unsealed) stamp(*catalog.Stamp)                                             {}
func (unsealed) complete(catalog.IndexEntry) bool                                 { return true }
func (unsealed) follow(context.Context, string, document, []byte, int64) error    { return nil }
func (unsealed) entry(e catalog.IndexEntry, _ string) catalog.IndexEntry          { return e }
func (unsealed) unsigned(context.Context, string, *catalog.Catalog) (bool, error) { return false, nil }

// sealed is a registry with a signing key.
type sealed struct {
	r *Registry
	*Signing
}

func (sealed) check(context.Context) error { return nil }

func (s sealed) stamp(st *catalog.Stamp) {
	v := s.Validity
	if v == 0 {
		v = DefaultSignatureValidity
	}
	*st = st.Next(s.r.now(), v)
}

func (sealed) entry(e catalog.IndexEntry, sum string) catalog.IndexEntry {
	e.SHA256 = sum
	return e
}

func (sealed) complete(e catalog.IndexEntry) bool { return e.SHA256 != "" }

func (s sealed) unsigned(ctx context.Context, key string, c *catalog.Catalog) (bool, error) {
	if c.Serial == 0 {
		return true, nil
	}
	_, err := s.r.Store.Stat(ctx, catalog.SignedPath(key))
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	return false, err
}

// follow stores the signed form of document key at its .sjson, with
// conditional writes retried on conflict, unless the .sjson already holds
// a document of this serial or a later one signed with this key: a late
// writer never replaces a newer signed document with an older one.
func (s sealed) follow(ctx context.Context, key string, doc document, data []byte, serial int64) error {
	skey := catalog.SignedPath(key)
	var signed []byte
	for attempt := 1; ; attempt++ {
		newer, etag, err := s.stored(ctx, skey, serial)
		if err != nil || newer {
			return err
		}
		if signed == nil {
			if signed, err = s.Signer.Sign(doc.signed(data), s.r.now()); err != nil {
				return fmt.Errorf("sign %s: %w", key, err)
			}
		}
		opts := store.PutOptions{IfMatch: etag, IfAbsent: etag == "", ContentType: "text/plain", CacheControl: CacheControlCatalog}
		_, err = s.r.Store.Put(ctx, skey, bytes.NewReader(signed), int64(len(signed)), opts)
		if err == nil {
			return nil
		}
		if err := s.r.retry(ctx, skey, fmt.Errorf("write %s: %w", skey, err), attempt); err != nil {
			return err
		}
	}
}

// signedHead is how much of a stored .sjson is read to find its serial
// (near the start of what this registry signs): a large one is read
// whole only when it may have to stay.
const signedHead = 64 << 10

// stored reads the .sjson skey: its ETag ("" when absent), and whether it
// must stay, being signed with this registry's key with a serial of
// serial or more. One that does not verify (damaged, or signed by another
// key) is replaced.
func (s sealed) stored(ctx context.Context, skey string, serial int64) (newer bool, etag string, err error) {
	rc, info, err := s.r.Store.Get(ctx, skey)
	if errors.Is(err, store.ErrNotFound) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("read %s: %w", skey, err)
	}
	defer rc.Close()
	cur, err := io.ReadAll(io.LimitReader(rc, signedHead))
	if err != nil {
		return false, "", fmt.Errorf("read %s: %w", skey, err)
	}
	if text, err := signing.UnverifiedPrefix(cur); err == nil {
		if st, err := catalog.ReadStamp(text); err == nil && st.Serial < serial {
			return false, info.ETag, nil
		}
	}
	rest, err := io.ReadAll(io.LimitReader(rc, maxJSON))
	if err != nil {
		return false, "", fmt.Errorf("read %s: %w", skey, err)
	}
	cur = append(cur, rest...)
	_, err = s.Signer.Keyring().Verify(cur, s.r.now())
	return err == nil && s.serialOf(cur) >= serial, info.ETag, nil
}

// serialOf is the serial of a stored .sjson (0 when it has none).
func (sealed) serialOf(signed []byte) int64 {
	text, err := signing.Unverified(signed)
	if err != nil {
		return 0
	}
	st, _ := catalog.ReadStamp(text)
	return st.Serial
}
