package catalog

import (
	"slices"
	"testing"
	"time"
)

// An image's SBOM is an item of its version (ftype sbom.spdx.json, beside
// the image's files), counted among its paths and shown by Entries.
func TestSBOMItem(t *testing.T) {
	c := New()
	im := img("nginx", "amd64", time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC), "a")
	im.SBOM = &FileRef{SHA256: hexOf("sbom"), Size: 1234}
	im.Custom = map[string]string{"sbom": SBOMPath(im.Fingerprint)}
	mustAdd(t, c, im)
	want := "images/" + im.Fingerprint + "/sbom.spdx.json"
	it := c.Products["nginx:amd64"].Versions[VersionKey(im.Created)].Items["sbom"]
	if it.FType != FTypeSBOM || it.Path != want || it.Size != 1234 {
		t.Errorf("sbom item: %+v", it)
	}
	if !slices.Contains(im.Paths(), want) || !c.Referenced()[want] {
		t.Errorf("paths %v do not hold %s", im.Paths(), want)
	}
	e := c.Entries()
	if len(e) != 1 || e[0].SBOM != want || e[0].Custom["sbom"] != want {
		t.Errorf("entries: %+v", e)
	}
	// Clients still see exactly one image in the version.
	if imgs := c.Products["nginx:amd64"].Versions[VersionKey(im.Created)].Images(); len(imgs) != 1 {
		t.Errorf("images: %+v", imgs)
	}
	bad := im
	bad.SBOM = &FileRef{SHA256: "nope", Size: 1}
	if err := bad.Validate(); err == nil {
		t.Error("a bad SBOM digest validates")
	}
}

// An image's provenance is an item of its version (ftype
// provenance.intoto.json, named by its own digest beside the image's
// files), counted among its paths and shown by Entries. Publishing the
// same image again with another statement (another run) changes nothing:
// the version keeps the provenance it was first published with.
func TestProvenanceItem(t *testing.T) {
	c := New()
	im := img("nginx", "amd64", time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC), "a")
	im.Provenance = &FileRef{SHA256: hexOf("statement 1"), Size: 4321}
	mustAdd(t, c, im)
	want := "images/" + im.Fingerprint + "/provenance-" + hexOf("statement 1") + ".intoto.json"
	it := c.Products["nginx:amd64"].Versions[VersionKey(im.Created)].Items["provenance"]
	if it.FType != FTypeProvenance || it.Path != want || it.Size != 4321 {
		t.Errorf("provenance item: %+v", it)
	}
	if !slices.Contains(im.Paths(), want) || !c.Referenced()[want] {
		t.Errorf("paths %v do not hold %s", im.Paths(), want)
	}
	if e := c.Entries(); len(e) != 1 || e[0].Provenance != want {
		t.Errorf("entries: %+v", e)
	}
	again := im
	again.Provenance = &FileRef{SHA256: hexOf("statement 2"), Size: 4322}
	if res := mustAdd(t, c, again); res.Changed() {
		t.Errorf("the same image with another statement: %+v", res)
	}
	if got := c.Products["nginx:amd64"].Versions[VersionKey(im.Created)].Items["provenance"]; got != it {
		t.Errorf("the provenance item changed to %+v", got)
	}
	other := img("nginx", "amd64", time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC), "b")
	if _, err := c.CheckAdd(other); err == nil {
		t.Error("other files under the same version: accepted")
	}
	bad := im
	bad.Provenance = &FileRef{SHA256: "nope", Size: 1}
	if err := bad.Validate(); err == nil {
		t.Error("a bad provenance digest validates")
	}
}
