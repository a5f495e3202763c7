package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/incus-appliance/registry/internal/catalog"
)

// SignedFile is one catalog document a re-signing wrote.
type SignedFile struct {
	Path   string `json:"path"`
	Serial int64  `json:"serial"`
}

// SignResult reports a re-signing.
type SignResult struct {
	// Signer is the fingerprint of the key that signed.
	Signer string `json:"signer"`
	// Files are the product files and index.json, with their new serial.
	Files []SignedFile `json:"files"`
	// Expires is when the documents signed now expire (RFC 3339).
	Expires string `json:"expires"`
	// Retries counts catalog writes lost to concurrent writers.
	Retries int `json:"retries"`
}

// Sign re-signs the whole catalog with r.Signing: every product file is
// written again with a new stamp (serial + 1, a new expiry) and its
// .sjson, then index.json is rebuilt from them all and signed likewise. It
// keeps a signed registry from expiring (a daily cron job), repairs one
// left half-signed by an interrupted command (a .sjson behind its .json,
// an index naming older product files), signs a registry that was not
// signed, and moves a registry to a new key (README: Trust). Concurrent
// publishers are harmless: each of their writes is signed too.
func (r *Registry) Sign(ctx context.Context) (*SignResult, error) {
	if r.Signing == nil {
		return nil, errors.New("signing needs the signing key (--signing-key FILE or PUBLISH_SIGNING_KEY)")
	}
	l, _, err := r.readLayout(ctx)
	if err != nil {
		return nil, err
	}
	if l.root.etag == "" {
		return nil, fmt.Errorf("no registry here: %s does not exist (publish an image first)", catalog.ImagesPath)
	}
	res := &SignResult{Signer: string(r.Signing.Signer.Fingerprint())}
	keys := l.Files()
	stats := make([]commitStats, len(keys))
	err = eachOf(len(keys), func(i int) error {
		var first *snapshot
		if keys[i] == catalog.ImagesPath {
			first = &l.root
		}
		var err error
		stats[i], err = r.commitIn(ctx, l, keys[i], newID(), first, func(*catalog.Catalog) (bool, error) { return true, nil })
		return err
	})
	fresh := map[string]*snapshot{}
	for i, st := range stats {
		res.Retries += st.Retries
		if st.Catalog != nil {
			res.Files = append(res.Files, SignedFile{Path: keys[i], Serial: st.Catalog.Serial})
		}
		fresh[keys[i]] = st.Snapshot
	}
	if err != nil {
		return res, err
	}
	n, ix, err := r.writeIndex(ctx, l, keys, fresh)
	res.Retries += n
	if err != nil {
		return res, err
	}
	res.Files = append(res.Files, SignedFile{Path: catalog.IndexPath, Serial: ix.Serial})
	res.Expires = ix.Expires
	return res, nil
}
