package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/signing"
	"github.com/incus-appliance/registry/internal/store"
)

// SignedDocument is what verify found of one signed catalog document (a
// .sjson).
type SignedDocument struct {
	Path string `json:"path"`
	// Status is "ok", or what is wrong: "missing"; "not-signed",
	// "malformed", "unknown-key", "bad-signature" (its signature);
	// "unstamped" (no serial or expiry); "behind" (its .json is newer: an
	// interrupted command left the registry half-signed); "mismatch" (it
	// does not hold its .json); "expired".
	Status string `json:"status"`
	// Signer is the fingerprint of the key that signed it.
	Signer  string `json:"signer,omitempty"`
	Serial  int64  `json:"serial,omitempty"`
	Expires string `json:"expires,omitempty"`
}

// expiryWarning is how long before a signed document expires verify warns.
const expiryWarning = 24 * time.Hour

// verifySignatures checks the signed catalog with keyring when one is
// given; without one it warns that a signed catalog's signatures were not
// checked.
func (r *Registry) verifySignatures(ctx context.Context, l layout, keyring *signing.Keyring, rep *VerifyReport) error {
	if keyring != nil {
		return r.verifySigned(ctx, l, keyring, rep)
	}
	signed, err := r.isSigned(ctx)
	if signed {
		rep.Warnings = append(rep.Warnings, "the catalog is signed: its signatures were not checked (give --keyring)")
	}
	return err
}

// verifySigned checks the signed catalog (catalog/stamp.go) with keyring:
// each .sjson of index.json and of the product files is signed by a key
// of it, is stamped and not expired, and holds exactly its .json (the
// index: with the signed paths); index.json names each product file's
// current digest. A .sjson behind its .json, or an index naming an older
// product file, is a half-signed registry: the next change of that file,
// or `publish sign`, repairs it.
func (r *Registry) verifySigned(ctx context.Context, l layout, kr *signing.Keyring, rep *VerifyReport) error {
	now := r.now()
	var ix *catalog.Index
	data, _, err := r.readObject(ctx, catalog.IndexPath)
	if err == nil {
		ix, err = catalog.ParseIndex(data)
	}
	if err != nil {
		return nil // verifyIndex reported it
	}
	doc, err := r.checkSigned(ctx, kr, catalog.IndexPath, data, func(body []byte) bool { return sameIndex(ix, body) }, now, rep)
	if err != nil {
		return err
	}
	rep.Signed = append(rep.Signed, doc)
	entries := ix.Entries()
	for _, key := range l.Files() {
		data, _, err := r.readObject(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			rep.problem("%s is missing: the signed index names it", key)
			continue
		}
		if err != nil {
			return err
		}
		if sum := digest.Of(data); entries[key].SHA256 != sum {
			rep.problem("half-signed: %s names another %s than the one stored (registry_sha256 %q, the file's sha256 %s): the next change of that file, or publish sign, repairs it", catalog.IndexPath, key, entries[key].SHA256, sum)
		}
		doc, err := r.checkSigned(ctx, kr, key, data, func(body []byte) bool { return bytes.Equal(body, data) }, now, rep)
		if err != nil {
			return err
		}
		rep.Signed = append(rep.Signed, doc)
	}
	return nil
}

// isSigned reports whether the registry is signed: it has index.sjson.
func (r *Registry) isSigned(ctx context.Context) (bool, error) {
	_, err := r.Store.Stat(ctx, catalog.SignedIndexPath)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("stat %s: %w", catalog.SignedIndexPath, err)
}

// checkSigned checks the .sjson of document key, whose bytes are data;
// holds reports whether a verified body is the document's signed form.
func (r *Registry) checkSigned(ctx context.Context, kr *signing.Keyring, key string, data []byte, holds func(body []byte) bool, now time.Time, rep *VerifyReport) (SignedDocument, error) {
	skey := catalog.SignedPath(key)
	doc := SignedDocument{Path: skey}
	signed, _, err := r.readObject(ctx, skey)
	if errors.Is(err, store.ErrNotFound) {
		doc.Status = "missing"
		rep.problem("%s is missing: clients that verify cannot read %s", skey, key)
		return doc, nil
	}
	if err != nil {
		return doc, err
	}
	v, err := kr.Verify(signed, now)
	if err != nil {
		doc.Status = signing.Reason(err)
		rep.problem("%s: %v", skey, err)
		return doc, nil
	}
	doc.Signer = string(v.Signer)
	got, _ := catalog.ReadStamp(v.Body)
	doc.Serial, doc.Expires = got.Serial, got.Expires
	if err := got.Check(); err != nil {
		doc.Status = "unstamped"
		rep.problem("%s: %v: verifiers cannot tell its age", skey, err)
		return doc, nil
	}
	want, _ := catalog.ReadStamp(data)
	switch {
	case want.Serial > got.Serial:
		doc.Status = "behind"
		rep.problem("half-signed: %s is serial %d, %s serial %d: an interrupted command; the next change of that file, or publish sign, repairs it", key, want.Serial, skey, got.Serial)
		return doc, nil
	case !holds(v.Body):
		doc.Status = "mismatch"
		rep.problem("%s (serial %d) does not hold %s (serial %d): one of them was changed by hand, or replaced", skey, got.Serial, key, want.Serial)
		return doc, nil
	}
	expires, _ := got.ExpiresAt()
	switch {
	case got.Expired(now):
		doc.Status = "expired"
		rep.problem("%s expired at %s: verifiers refuse it; re-sign the registry (publish sign)", skey, got.Expires)
	case now.Add(expiryWarning).After(expires):
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s expires at %s: re-sign the registry (publish sign) before then", skey, got.Expires))
		fallthrough
	default:
		doc.Status = "ok"
	}
	return doc, nil
}

// sameIndex reports whether body, index.sjson's text, is index.json (ix)
// with its entries naming the signed product files.
func sameIndex(ix *catalog.Index, body []byte) bool {
	signed, err := catalog.ParseIndex(body)
	if err != nil {
		return false
	}
	back, err := signed.Unsigned()
	return err == nil && bytes.Equal(back.Marshal(), ix.Marshal())
}
