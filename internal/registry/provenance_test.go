package registry

import (
	"bytes"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/debian"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/provenance"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
)

// buildFacts are the provenance inputs of a test build (the subject is
// Publish's to fill).
func buildFacts(run string) *provenance.Inputs {
	return &provenance.Inputs{
		Appliance: "nginx", Arch: "amd64", ImageType: "container",
		Folder: "appliances/nginx", FolderDigest: provenance.DigestSet{"sha256": strings.Repeat("c", 64)},
		Base: "debian/bookworm", Distrobuilder: "3.2",
		Packages:   debian.Packages{"nginx": "1.22.1-9"},
		APTSources: []debian.Source{{URI: "http://deb.debian.org/debian", Suite: "bookworm", Components: []string{"main"}}},
		BuilderID:  "https://ci.example.org/release", InvocationID: run,
		GateReport: []byte("{\"passed\": true}\n"),
	}
}

// A published image with build facts gets a provenance statement stored
// beside it, named by its digest and listed in its version (so the
// catalog's signature covers it): its subject is every file of the image
// with its sha256, and Provenance gives it back. Publishing the same image
// again from another run changes nothing.
func TestPublishProvenance(t *testing.T) {
	s := newSignedScene(t, testShards)
	req := makeImage(t, "nginx", t0, 1)
	req.Provenance = buildFacts("run 1")
	res := mustPublish(t, s.r, req)
	data, path, err := s.r.Provenance(s.ctx, "nginx", "")
	if err != nil {
		t.Fatal(err)
	}
	if path != catalog.ProvenancePath(req.Image.Fingerprint, digest.Of(data)) || !slices.ContainsFunc(res.Files, func(f FileResult) bool { return f.Path == path && f.Uploaded }) {
		t.Errorf("statement at %s, publish sent %+v", path, res.Files)
	}
	st, err := provenance.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, f := range req.Image.Files() {
		want[f.Path] = f.SHA256
	}
	if got := st.SubjectSHA256(); !maps.Equal(got, want) {
		t.Errorf("subject %v, want the image's files %v", got, want)
	}
	if e := readCatalog(t, s.r).Entries(); e[0].Provenance != path {
		t.Errorf("entry: %+v", e[0])
	}
	s.mustVerifySigned(signingtest.Keyring(t, s.key))
	if rep := mustVerify(t, s.r); rep.Files != 3 {
		t.Errorf("verify checked %d files, want 3 (metadata, root, statement)", rep.Files)
	}

	again := req
	again.Provenance = buildFacts("run 2")
	if res := mustPublish(t, s.r, again); res.Changed || slices.ContainsFunc(res.Files, func(f FileResult) bool { return strings.Contains(f.Path, "provenance") }) {
		t.Errorf("the same image from another run: %+v", res)
	}
	if now, _, _ := s.r.Provenance(s.ctx, "nginx", ""); !bytes.Equal(now, data) {
		t.Errorf("the statement changed")
	}
	if _, _, err := s.r.Provenance(s.ctx, "redis", ""); err == nil {
		t.Errorf("provenance of an unknown image: no error")
	}
	other := s.publish("redis", t0, 3)
	if _, _, err := s.r.Provenance(s.ctx, "redis", ""); err == nil || !strings.Contains(err.Error(), "no provenance") {
		t.Errorf("provenance of %s, published without build facts: %v", other.Image.Name, err)
	}
}

// verify finds a statement whose subject is not the version's files (a
// statement made for another image, or a file swapped in the catalog).
func TestVerifyProvenanceSubjects(t *testing.T) {
	s := newScene(t)
	req := makeImage(t, "nginx", t0, 1)
	req.Provenance = buildFacts("run 1")
	mustPublish(t, s.r, req)
	data, _, err := s.r.Provenance(s.ctx, "nginx", "")
	if err != nil {
		t.Fatal(err)
	}
	// A statement about other bytes of the root, put in place of the
	// stored one, its item in the catalog edited to match.
	in := *buildFacts("run 1")
	meta, root := catalog.ImagePaths(req.Image.Fingerprint, req.Image.RootKind)
	in.Files = []provenance.File{{Name: meta, SHA256: req.Image.Metadata.SHA256}, {Name: root, SHA256: strings.Repeat("e", 64)}}
	st, err := provenance.New(in)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := st.Marshal()
	s.replace(catalog.ProvenancePath(req.Image.Fingerprint, digest.Of(forged)), forged)
	rewriteCatalog(t, s.fs.Store, func(js string) string {
		js = strings.ReplaceAll(js, digest.Of(data), digest.Of(forged))
		return strings.Replace(js, `"size": `+strconv.Itoa(len(data)), `"size": `+strconv.Itoa(len(forged)), 1)
	})
	rep := s.verifyWith(VerifyOptions{})
	if !strings.Contains(problems(rep), "subject "+root+" has sha256 "+strings.Repeat("e", 64)) {
		t.Errorf("verify: %q", rep.Problems)
	}
}
