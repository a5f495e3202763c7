package edgeproxy

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
)

// bigProducts is a signed-registry product file of about size bytes:
// products of three versions of two files each, stamped.
func bigProducts(b *testing.B, size int) []byte {
	b.Helper()
	products := map[string]any{}
	perProduct := 2400 // bytes a product takes, indented
	for i := 0; i < size/perProduct; i++ {
		versions := map[string]any{}
		for v := range 3 {
			fp := fmt.Sprintf("%064x", i*3+v)
			versions[fmt.Sprintf("2026112%d_0000", v)] = map[string]any{"items": map[string]any{
				"incus.tar.xz": map[string]any{"ftype": "incus.tar.xz", "path": "images/" + fp + "/incus.tar.xz", "sha256": fp, "size": 688, "combined_squashfs_sha256": fp},
				"squashfs":     map[string]any{"ftype": "squashfs", "path": "images/" + fp + "/rootfs.squashfs", "sha256": fp, "size": 64 << 20},
			}}
		}
		products[fmt.Sprintf("app%d:amd64", i)] = map[string]any{"aliases": fmt.Sprintf("app%d", i), "arch": "amd64", "versions": versions}
	}
	now := time.Now().UTC()
	doc := struct {
		ContentID string `json:"content_id"`
		catalog.Stamp
		Products map[string]any `json:"products"`
	}{"images", catalog.Stamp{Updated: now.Format(catalog.UpdatedLayout), Serial: 7, Expires: now.Add(time.Hour).Format(time.RFC3339)}, products}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	return append(data, '\n')
}

// What the proxy does with a product file of a signed registry when it
// changes, at the sizes of issue 20 (2 MB, and a 10× catalog of 120 MB):
// verify (the signature, the stamp) against parse (what the proxy reads
// of every catalog, with or without a keyring). Issue 20 asks that the
// first cost less than the second.
func BenchmarkVerifiedCatalog(b *testing.B) {
	kr := signingtest.Keyring(b, testKey(b))
	for _, size := range []int{2 << 20, 120 << 20} {
		doc := bigProducts(b, size)
		signed, err := testKey(b).Signer.Sign(doc, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("%dMB", len(doc)>>20)
		b.Run(name+"/verify", func(b *testing.B) {
			b.SetBytes(int64(len(signed)))
			for b.Loop() {
				if _, err := verify(kr, catalog.SignedPath(catalog.ImagesPath), signed, 0, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/parse", func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				e := &catalogEntry{data: doc}
				e.parse()
				if len(e.files) == 0 {
					b.Fatal("nothing parsed")
				}
			}
		})
	}
}
