package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// A signed registry clear-signs every catalog document clients read:
// index.json and each product file (images.json of a registry of one
// file, images-K.json of one of several; never the root of several, which
// clients do not read). X.sjson (SignedPath) is the OpenPGP clear-signed
// form of exactly the bytes of X.json, except index.sjson, which signs
// index.json with every entry's path naming the signed product file
// (Index.Signed), as the reference SimpleStreams client follows it.
//
// Each signed document carries a Stamp, and each index entry the digest
// of the product file it names (IndexEntry.SHA256, registry_sha256),
// which together let a verifier refuse what a signature alone does not
// stop:
//   - rollback (an older signed document served again): the serial grows
//     by one at each write of a document, and a verifier remembers the
//     last it accepted;
//   - freeze (one signed catalog served forever): the document expires;
//   - mix-and-match (an index of one moment with product files of
//     another): the index binds each product file's bytes as of the
//     index's write.
//
// A product file is written before its .sjson, and both before the index
// and its .sjson; a .sjson is only ever replaced by one of a higher
// serial (or when it does not verify with the writer's own key: damaged,
// or signed with a key being rotated out). The stamp and registry_sha256
// are written with a key only; a registry that has index.sjson refuses
// changes without one. index.sjson never names a missing file: the first
// signed index of a registry of several files writes (and signs) every
// product file no publish has written yet, empty.

// Stamp is what a signed catalog document carries besides its content.
// Clients ignore it.
type Stamp struct {
	// Updated is SimpleStreams' own field: when the document was written
	// (RFC 1123 with a numeric zone, as cloud-images.ubuntu.com writes it).
	Updated string `json:"updated,omitempty"`
	// Serial counts the document's writes since it was first signed: +1
	// at each.
	Serial int64 `json:"registry_serial,omitempty"`
	// Expires is when verifiers stop accepting the document (RFC 3339,
	// UTC): a registry is re-signed (`publish sign`) before then.
	Expires string `json:"registry_expires,omitempty"`
}

// UpdatedLayout is the time layout of Stamp.Updated.
const UpdatedLayout = time.RFC1123Z

// Next is the stamp of the next write of a document stamped s: one more
// serial, written at now, valid for validity.
func (s Stamp) Next(now time.Time, validity time.Duration) Stamp {
	now = now.UTC()
	return Stamp{
		Updated: now.Format(UpdatedLayout),
		Serial:  s.Serial + 1,
		Expires: now.Add(validity).Truncate(time.Second).Format(time.RFC3339),
	}
}

// Registry reports whether s is this registry's stamp (a serial or an
// expiry): "updated" alone is SimpleStreams' own field, which other
// publishers' documents carry too (cloud-images.ubuntu.com's).
func (s Stamp) Registry() bool { return s.Serial != 0 || s.Expires != "" }

// ExpiresAt is Expires as a time; an error when it is missing or not
// RFC 3339.
func (s Stamp) ExpiresAt() (time.Time, error) {
	if s.Expires == "" {
		return time.Time{}, errors.New("no registry_expires")
	}
	t, err := time.Parse(time.RFC3339, s.Expires)
	if err != nil {
		return time.Time{}, fmt.Errorf("registry_expires %q is not an RFC 3339 time", s.Expires)
	}
	return t, nil
}

// Check reports what a signed document's stamp lacks: a serial, an
// update time, a valid expiry.
func (s Stamp) Check() error {
	if s.Serial < 1 {
		return errors.New("no registry_serial")
	}
	if _, err := time.Parse(UpdatedLayout, s.Updated); err != nil {
		return fmt.Errorf("updated %q is not an RFC 1123 time", s.Updated)
	}
	_, err := s.ExpiresAt()
	return err
}

// ReadStamp reads the stamp of a catalog document (a product file or an
// index) without decoding the rest: the stamp comes before the products
// in what this package writes, so the products are not read at all.
func ReadStamp(data []byte) (Stamp, error) {
	var st Stamp
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return st, errors.New("not a JSON object")
	}
	fields := map[string]any{"updated": &st.Updated, "registry_serial": &st.Serial, "registry_expires": &st.Expires}
	for found := 0; found < len(fields) && dec.More(); {
		tok, err := dec.Token()
		if err != nil {
			return st, fmt.Errorf("invalid JSON: %w", err)
		}
		var v any = new(json.RawMessage)
		if f, ok := fields[tok.(string)]; ok {
			v = f
			found++
		}
		if err := dec.Decode(v); err != nil {
			return st, fmt.Errorf("field %q: %w", tok, err)
		}
	}
	return st, nil
}

// Signed returns the index as index.sjson signs it: each entry's path
// names the signed form of its product file; nothing else differs.
func (ix *Index) Signed() *Index {
	out := ix.clone()
	for k, e := range out.Index {
		e.Path = SignedPath(e.Path)
		out.Index[k] = e
	}
	return out
}

// Unsigned is the inverse of Signed, for an index read from index.sjson:
// each entry's path names the product file itself. An entry that does not
// name a signed form is an error.
func (ix *Index) Unsigned() (*Index, error) {
	out := ix.clone()
	for k, e := range out.Index {
		p, ok := strings.CutSuffix(e.Path, ".sjson")
		if !ok {
			return nil, fmt.Errorf("%s: entry %q names %q, not a signed file (.sjson)", SignedIndexPath, k, e.Path)
		}
		e.Path = p + ".json"
		out.Index[k] = e
	}
	return out, nil
}

// clone copies the index and its map of entries (not the entries' lists).
func (ix *Index) clone() *Index {
	out := *ix
	out.Index = maps.Clone(ix.Index)
	return &out
}

// Same reports whether two index entries say the same of their file.
func (e IndexEntry) Same(o IndexEntry) bool {
	return e.DataType == o.DataType && e.Path == o.Path && e.Format == o.Format && e.SHA256 == o.SHA256 &&
		slices.Equal(e.Products, o.Products) && slices.Equal(e.Aliases, o.Aliases)
}
