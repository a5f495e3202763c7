package edgeproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/signing"
)

// With a keyring the proxy serves the catalog only as extracted from
// signed documents (catalog/stamp.go): index.json from index.sjson whose
// signature verified (its entries naming the product files again), each
// product file from its .sjson, never the stored .json; the .sjson
// themselves as verified (for clients that verify, such as the reference
// SimpleStreams client). What it serves is
// a snapshot: an index and every product file it names, each verified,
// stamped, not expired, no older than the last of its path verified
// (remembered in the state folder across restarts), and each product
// file the one the index binds (registry_sha256). A snapshot replaces the
// one served only whole; anything refused leaves the last one served, and
// is logged (one line) and counted by reason. A snapshot that expires is
// no longer served (a frozen origin is not hidden from clients), nor is
// anything before the first one verified: catalog paths answer 503.

// Reasons a signed catalog is refused: the values of the reason label of
// edgeproxy_catalog_refusals_total.
const (
	refusedMissing      = "missing"       // a .sjson the catalog needs is not there
	refusedNotSigned    = "not-signed"    // a .sjson that is plain text
	refusedMalformed    = "malformed"     // not well formed (its signature, or the document signed)
	refusedUnknownKey   = "unknown-key"   // signed by no key of the keyring
	refusedBadSignature = "bad-signature" // a signature that does not match (tampered)
	refusedUnstamped    = "unstamped"     // no registry_serial or registry_expires
	refusedExpired      = "expired"       // registry_expires has passed
	refusedRollback     = "rollback"      // an older registry_serial than the last verified
	refusedMix          = "mix"           // a product file the index does not bind (another signed moment)
)

// refusal is a signed catalog document refused, and why.
type refusal struct {
	reason string
	path   string // the .sjson
	err    error
	key    string // tells one refusal from another (path and digest), so each is logged once
}

func (r *refusal) Error() string { return fmt.Sprintf("%s refused (%s): %v", r.path, r.reason, r.err) }

func refuse(reason, path string, raw []byte, format string, args ...any) *refusal {
	return &refusal{reason: reason, path: path, err: fmt.Errorf(format, args...), key: reason + " " + path + " " + digest.Of(raw)}
}

// errNoVerifiedCatalog: nothing verified to serve (yet, or any longer).
var errNoVerifiedCatalog = errors.New("no verified catalog to serve")

// signedDoc is a signed catalog document that verified.
type signedDoc struct {
	raw     []byte // the .sjson as read
	body    []byte // the document signed
	sum     string // sha256 of body
	serial  int64
	updated time.Time
	expires time.Time
}

// snapshot is a verified catalog: what is served, by catalog path
// (index.json and the product files it names), and the documents it came
// from, by .sjson path.
type snapshot struct {
	entries map[string]*catalogEntry
	docs    map[string]*signedDoc
	expires time.Time // the first expiry of its documents
}

// verifiedCatalog reads, verifies and serves signed catalog snapshots.
type verifiedCatalog struct {
	origin  Origin
	gate    *originGate
	keyring *signing.Keyring
	serials *serialStore
	ttl     time.Duration
	now     func() time.Time
	m       *metrics
	log     *slog.Logger
	group   singleflight.Group

	mu      sync.Mutex
	snap    *snapshot // nil: none verified yet
	checked time.Time // when the origin was last read
	bad     map[[32]byte]*refusal
	logged  string // the key of the last refusal logged
	warned  bool   // "nothing to serve" logged since the last snapshot
}

func newVerifiedCatalog(o Origin, gate *originGate, kr *signing.Keyring, serials *serialStore, ttl time.Duration, m *metrics, log *slog.Logger) *verifiedCatalog {
	return &verifiedCatalog{origin: o, gate: gate, keyring: kr, serials: serials, ttl: ttl, now: time.Now, m: m, log: log, bad: map[[32]byte]*refusal{}}
}

// get returns the verified entry of catalog path key (missing when the
// verified index does not name it), reading the origin again when the
// snapshot was checked more than ttl ago.
func (v *verifiedCatalog) get(ctx context.Context, key string) (*catalogEntry, error) {
	v.mu.Lock()
	fresh := time.Since(v.checked) < v.ttl
	v.mu.Unlock()
	if fresh {
		v.m.cache.WithLabelValues("hit").Inc()
	} else {
		_, err, shared := v.group.Do("refresh", func() (any, error) {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			return nil, v.refresh(fctx)
		})
		v.m.cache.WithLabelValues(map[bool]string{false: "miss", true: "collapsed"}[shared]).Inc()
		if err != nil && v.current() == nil && !errors.As(err, new(*refusal)) {
			return nil, err // the origin failed, and there is nothing to fall back on
		}
	}
	snap := v.current()
	if snap == nil {
		v.warnOnce("no signed catalog verified yet: catalog paths answer 503 until one does", "none", time.Now())
		return nil, errNoVerifiedCatalog
	}
	if !v.now().Before(snap.expires) {
		v.warnOnce("the verified catalog expired: catalog paths answer 503 until a newer one verifies", "expired", snap.expires)
		return nil, errNoVerifiedCatalog
	}
	if e, ok := snap.entries[key]; ok {
		return e, nil
	}
	return &catalogEntry{missing: true, fetched: snap.entries[catalog.IndexPath].fetched}, nil
}

// current is the snapshot served.
func (v *verifiedCatalog) current() *snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.snap
}

// refresh reads the signed catalog and, when all of it verifies, serves
// it. A product file the index does not bind is read once more, index
// first: a publisher writes a product file before its index.
func (v *verifiedCatalog) refresh(ctx context.Context) error {
	defer func() {
		v.mu.Lock()
		v.checked = time.Now()
		v.mu.Unlock()
	}()
	snap, err := v.read(ctx)
	if r := (*refusal)(nil); errors.As(err, &r) && r.reason == refusedMix {
		snap, err = v.read(ctx)
	}
	if r := (*refusal)(nil); errors.As(err, &r) {
		v.refused(r)
		return err
	}
	if err != nil {
		return err
	}
	return v.serve(snap)
}

// read reads the signed index and every product file it names, and checks
// them (check), reusing what the served snapshot holds of unchanged
// documents.
func (v *verifiedCatalog) read(ctx context.Context) (*snapshot, error) {
	now := v.now()
	held := v.current()
	raw, err := v.readOrigin(ctx, catalog.SignedIndexPath)
	if err != nil {
		return nil, err
	}
	ixDoc, err := v.document(catalog.SignedIndexPath, raw, held, now)
	if err != nil {
		return nil, err
	}
	signed, err := catalog.ParseIndex(ixDoc.body)
	var ix *catalog.Index
	if err == nil {
		ix, err = signed.Unsigned()
	}
	if err != nil {
		return nil, refuse(refusedMalformed, catalog.SignedIndexPath, ixDoc.raw, "%v", err)
	}
	snap := &snapshot{entries: map[string]*catalogEntry{}, docs: map[string]*signedDoc{catalog.SignedIndexPath: ixDoc}, expires: ixDoc.expires}
	snap.entries[catalog.IndexPath] = v.entry(held, catalog.IndexPath, ixDoc, func() []byte { return ix.Marshal() }, now)
	snap.entries[catalog.SignedIndexPath] = v.entry(held, catalog.SignedIndexPath, ixDoc, func() []byte { return ixDoc.raw }, now)
	names := slices.Sorted(maps.Keys(ix.Index))
	for _, name := range names {
		path := strings.TrimPrefix(ix.Index[name].Path, "/")
		if _, c, status := route("/" + path); status != 0 || c != classCatalog || path != unsignedPath(path) || path == catalog.IndexPath {
			return nil, refuse(refusedMalformed, catalog.SignedIndexPath, ixDoc.raw, "entry %q names %q, not a product file", name, ix.Index[name].Path)
		}
	}
	raws, err := v.readAll(ctx, names, ix)
	if err != nil {
		return nil, err
	}
	for i, name := range names {
		e := ix.Index[name]
		path := strings.TrimPrefix(e.Path, "/")
		spath := catalog.SignedPath(path)
		doc, err := v.document(spath, raws[i], held, now)
		if err != nil {
			return nil, err
		}
		if doc.sum != e.SHA256 {
			r := refuse(refusedMix, spath, append(slices.Clip(ixDoc.raw), doc.raw...),
				"%s (serial %d) binds another %s (registry_sha256 %q) than this one (serial %d, sha256 %s): they are from different signed moments",
				catalog.SignedIndexPath, ixDoc.serial, path, e.SHA256, doc.serial, doc.sum)
			return nil, r
		}
		snap.docs[spath] = doc
		snap.entries[path] = v.entry(held, path, doc, func() []byte { return doc.body }, now)
		snap.entries[spath] = v.entry(held, spath, doc, func() []byte { return doc.raw }, now)
		if doc.expires.Before(snap.expires) {
			snap.expires = doc.expires
		}
	}
	return snap, nil
}

// entry is the catalog entry of path served from doc: the held snapshot's
// when doc is unchanged (its parse and gzip kept), else a new one.
func (v *verifiedCatalog) entry(held *snapshot, path string, doc *signedDoc, data func() []byte, now time.Time) *catalogEntry {
	if held != nil && held.docs[catalog.SignedPath(unsignedPath(path))] == doc {
		if e, ok := held.entries[path]; ok {
			return e
		}
	}
	b := data()
	return &catalogEntry{data: b, etag: `"` + digest.Of(b) + `"`, modTime: doc.updated, fetched: now}
}

// readAll reads the signed product files of the index's entries names, a
// few at a time.
func (v *verifiedCatalog) readAll(ctx context.Context, names []string, ix *catalog.Index) ([][]byte, error) {
	raws := make([][]byte, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, name := range names {
		g.Go(func() error {
			var err error
			raws[i], err = v.readOrigin(gctx, catalog.SignedPath(strings.TrimPrefix(ix.Index[name].Path, "/")))
			return err
		})
	}
	return raws, g.Wait()
}

// document checks the signed document raw read at path: unchanged since
// the held snapshot, or verified now (verify). A document refused for what
// its bytes are is not verified again.
func (v *verifiedCatalog) document(path string, raw []byte, held *snapshot, now time.Time) (*signedDoc, error) {
	if held != nil {
		if d := held.docs[path]; d != nil && bytes.Equal(d.raw, raw) {
			if !now.Before(d.expires) {
				return nil, refuse(refusedExpired, path, raw, "serial %d expired at %s", d.serial, d.expires.UTC().Format(time.RFC3339))
			}
			return d, nil
		}
	}
	sum := sha256.Sum256(raw)
	v.mu.Lock()
	r := v.bad[sum]
	v.mu.Unlock()
	if r != nil && r.path == path {
		return nil, r
	}
	doc, err := verify(v.keyring, path, raw, v.serials.last(path), now)
	if r := (*refusal)(nil); errors.As(err, &r) && r.reason != refusedMix {
		v.mu.Lock()
		if len(v.bad) >= 256 {
			clear(v.bad)
		}
		v.bad[sum] = r
		v.mu.Unlock()
	}
	return doc, err
}

// verify checks one signed document: signed by a key of the keyring,
// stamped, not expired at now, and not older than last, the serial of the
// last verified at its path.
func verify(kr *signing.Keyring, path string, raw []byte, last int64, now time.Time) (*signedDoc, error) {
	vd, err := kr.Verify(raw, now)
	if err != nil {
		return nil, refuse(signing.Reason(err), path, raw, "%v", err)
	}
	st, err := catalog.ReadStamp(vd.Body)
	if err == nil {
		err = st.Check()
	}
	if err != nil {
		return nil, refuse(refusedUnstamped, path, raw, "%v", err)
	}
	expires, _ := st.ExpiresAt()
	updated, _ := time.Parse(catalog.UpdatedLayout, st.Updated)
	switch {
	case st.Expired(now):
		return nil, refuse(refusedExpired, path, raw, "serial %d expired at %s", st.Serial, st.Expires)
	case st.Serial < last:
		return nil, refuse(refusedRollback, path, raw, "serial %d is older than serial %d, the last verified", st.Serial, last)
	}
	return &signedDoc{raw: raw, body: vd.Body, sum: digest.Of(vd.Body), serial: st.Serial, updated: updated, expires: expires}, nil
}

// readOrigin reads a signed document; a missing one is refused.
func (v *verifiedCatalog) readOrigin(ctx context.Context, path string) ([]byte, error) {
	data, _, _, err := readCatalogFile(ctx, v.origin, v.gate, v.m, path)
	switch {
	case isNotFound(err):
		return nil, refuse(refusedMissing, path, nil, "not found")
	case err != nil:
		return nil, err
	case len(data) > maxCatalogBytes:
		return nil, refuse(refusedMalformed, path, nil, "larger than the catalog limit")
	}
	return data, nil
}

// serve records the snapshot's serials and serves it.
func (v *verifiedCatalog) serve(snap *snapshot) error {
	serials := map[string]int64{}
	for p, d := range snap.docs {
		serials[p] = d.serial
	}
	if err := v.serials.advance(serials); err != nil {
		// Served all the same: the serials are still checked in memory,
		// only a restart would forget them.
		v.log.Error("catalog serials not saved", "err", err)
	}
	ix := snap.docs[catalog.SignedIndexPath]
	v.mu.Lock()
	old := v.snap
	v.snap, v.logged, v.warned = snap, "", false
	v.mu.Unlock()
	if old == nil || old.docs[catalog.SignedIndexPath] != ix {
		v.log.Info("signed catalog verified", "serial", ix.serial, "files", len(snap.docs)-1, "expires", snap.expires.UTC().Format(time.RFC3339))
		v.m.catalogSerial.Set(float64(ix.serial))
		v.m.catalogExpires.Set(float64(snap.expires.Unix()))
	}
	return nil
}

// refused logs and counts a refusal, once in a row for the same one.
func (v *verifiedCatalog) refused(r *refusal) {
	v.mu.Lock()
	again := v.logged == r.key
	v.logged = r.key
	serving := v.snap != nil
	v.mu.Unlock()
	if again {
		return
	}
	v.m.catalogRefusals.WithLabelValues(r.reason).Inc()
	keeps := "still serving the last verified catalog"
	if !serving {
		keeps = "no verified catalog: catalog paths answer 503"
	}
	v.log.Warn("signed catalog refused", "reason", r.reason, "path", r.path, "err", r.err.Error(), "then", keeps)
}

// warnOnce logs, once until a snapshot is served again, that there is
// nothing to serve.
func (v *verifiedCatalog) warnOnce(msg, why string, at time.Time) {
	v.mu.Lock()
	warned := v.warned
	v.warned = true
	v.mu.Unlock()
	if !warned {
		v.log.Warn(msg, "why", why, "at", at.UTC().Format(time.RFC3339))
	}
}
