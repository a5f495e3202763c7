package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/filetest"
)

// readImagesJSON parses the images.json of the registry folder reg.
func readImagesJSON(t testing.TB, reg string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Parse(filetest.Read(t, filepath.Join(reg, catalog.ImagesPath)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The real incus-simplestreams writes into our tree (add: drops
// registry_state; remove: drops one of our images) and reads it (list);
// then our verify passes with warnings saying what changed, prune deletes
// nothing that left the catalog a moment ago, and the real incus client
// still lists both tools' images.
func TestIncusSimplestreamsOnOurTree(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry")
	v := publishVersions(t, nil, "nginx", 2, "--bucket", reg)
	fp1, fp2 := v[0].fp, v[1].fp

	// incus-simplestreams reads our tree.
	var listed []struct {
		Fingerprint string `json:"fingerprint"`
	}
	if err := json.Unmarshal([]byte(simplestreams(t, reg, "list", "--format", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 {
		t.Errorf("incus-simplestreams list on our tree: %d images, want 2", len(listed))
	}

	// It adds an image of its own: images.json loses registry_state.
	fm, fr := foreignImage(t, t0, 3)
	simplestreams(t, reg, "add", fm, fr)
	fpf := fingerprintOf(t, fm, fr)
	if c := readImagesJSON(t, reg); c.State != nil {
		t.Fatalf("incus-simplestreams kept registry_state: the test no longer exercises a foreign rewrite")
	}
	r := publish(t, "verify", "--bucket", reg)
	if r.code != 0 || !strings.Contains(r.stdout, "no registry_state") || !strings.Contains(r.stdout, "no lxd.tar.xz item carrying fingerprint "+fpf) {
		t.Errorf("verify after incus-simplestreams add: exit %d, want 0 with warnings\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := publish(t, "verify", "--bucket", reg, "--strict"); r.code != 1 {
		t.Errorf("verify --strict after incus-simplestreams add: exit %d, want 1\n%s", r.code, r.stdout)
	}

	// It removes our first nginx image: both clients stop showing it (the
	// root item is keyed "squashfs", as the tool expects), the tool deletes
	// the root file itself, the metadata file stays referenced by a shell.
	simplestreams(t, reg, "remove", fp1)
	c := readImagesJSON(t, reg)
	if v := c.Products["nginx:amd64"].Versions[catalog.VersionKey(t0)]; v == nil || !v.IsShell() {
		t.Fatalf("after incus-simplestreams remove, version %s = %+v, want a shell without root item", catalog.VersionKey(t0), v)
	}
	if _, err := os.Stat(filepath.Join(reg, "images", fp1, "rootfs.squashfs")); !os.IsNotExist(err) {
		t.Errorf("incus-simplestreams remove did not delete the root file: %v", err)
	}
	r = publish(t, "verify", "--bucket", reg)
	if r.code != 0 || !strings.Contains(r.stdout, "has metadata but no root item") {
		t.Errorf("verify after incus-simplestreams remove: exit %d, want 0 with the shell warning\n%s%s", r.code, r.stdout, r.stderr)
	}

	url, cert := serveHTTPS(t, reg)
	for _, name := range []string{"incus", "lxc"} {
		cl := remoteClient(t, name, "reg", url, cert)
		got := cl.list(t, "reg")
		if _, ok := got[fp1]; ok {
			t.Errorf("%s still lists the image incus-simplestreams removed", name)
		}
		if _, ok := got[fp2]; !ok {
			t.Errorf("%s does not list our second image: %v", name, got)
		}
		if _, ok := got[fpf]; !ok && name == "incus" {
			t.Errorf("incus does not list the image incus-simplestreams added: %v", got)
		}
	}

	// Prune: the shell goes, its metadata file waits the full grace.
	out := mustPublish(t, "prune", "--bucket", reg)
	if !strings.Contains(out, "0 files deleted") {
		t.Errorf("prune right after the foreign changes printed %q", out)
	}
	if _, err := os.Stat(filepath.Join(reg, "images", fp1, "incus.tar.xz")); err != nil {
		t.Errorf("prune deleted the metadata file that left the catalog a moment ago: %v", err)
	}
	c = readImagesJSON(t, reg)
	if c.Products["nginx:amd64"].Versions[catalog.VersionKey(t0)] != nil {
		t.Error("prune kept the version shell")
	}
	if c.State == nil || c.State.Retired["images/"+fp1+"/incus.tar.xz"].IsZero() {
		t.Errorf("prune did not record the metadata file as retired: %+v", c.State)
	}
	mustPublish(t, "verify", "--bucket", reg)
	simplestreams(t, reg, "verify")
}

// A tree written by the real incus-simplestreams (images/<fp>.incus.tar.xz,
// images/<fp>.squashfs) served by edgeproxy: the real incus client lists
// the image and exports it (every download used to be a 404).
func TestIncusSimplestreamsTreeThroughEdgeproxy(t *testing.T) {
	tree := t.TempDir()
	fm, fr := foreignImage(t, t0, 11)
	simplestreams(t, tree, "add", fm, fr)
	fp := fingerprintOf(t, fm, fr)
	url, cert := runEdgeproxy(t, nil, "--bucket", tree)
	incus := remoteClient(t, "incus", "ss", url, cert)
	if _, ok := incus.list(t, "ss")[fp]; !ok {
		t.Fatalf("incus does not list the incus-simplestreams image %s", fp[:12])
	}
	incus.wantExport(t, "ss:alpine/3.20/cloud", fp)
}
