package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
)

// chain writes n versions of appliance name, each the one before with a
// small change (as a rebuild with one changed file), an hour apart from
// start, oldest first.
func chain(t *testing.T, name string, start time.Time, n int) []sample {
	t.Helper()
	meta, root := sampleImage(t, name, start, 1)
	out := []sample{{name: name, meta: meta, root: root, fp: fingerprintOf(t, meta, root)}}
	for i := 1; i < n; i++ {
		meta, root := sampleUpdate(t, name, start.Add(time.Duration(i)*time.Hour), out[i-1].root, strings.Repeat("change ", i))
		out = append(out, sample{name: name, meta: meta, root: root, fp: fingerprintOf(t, meta, root)})
	}
	return out
}

// deltaHost is one Incus daemon following a registry served by edgeproxy,
// whose access log says what each refresh downloaded.
type deltaHost struct {
	t     *testing.T
	reg   string
	incus *client
	log   *accessLog
}

// publish publishes s with publish's default delta depth and returns the
// deltas it listed, by base version.
func (h *deltaHost) publish(s sample) map[string]publishedDelta {
	h.t.Helper()
	res := publishJSON(h.t, nil, s.name, "--bucket", h.reg, "--metadata", s.meta, "--rootfs", s.root)
	out := map[string]publishedDelta{}
	for _, d := range res.Deltas {
		if !d.Listed {
			h.t.Fatalf("publish %s: delta %+v not listed", s.name, d)
		}
		out[d.Base] = d
	}
	return out
}

// refresh runs `incus image refresh alias` (the catalog cache dropped
// first), checks that the host then holds image want, intact, and
// returns the image files the daemon downloaded meanwhile and what the
// command printed.
func (h *deltaHost) refresh(alias string, want sample) (fetched, printed string) {
	h.t.Helper()
	forgetCatalog(h.t)
	from := h.log.len()
	printed = h.incus.run(h.t, "image", "refresh", alias)
	if got := localFingerprint(h.t, h.incus, alias); got != want.fp {
		h.t.Fatalf("after the refresh %s is %s, want %s (incus: %s)", alias, got, want.fp, printed)
	}
	h.wantIntact(want.fp)
	var files []string
	for _, p := range h.log.paths(from) {
		if strings.Contains(p, "/images/") {
			files = append(files, p)
		}
	}
	return strings.Join(files, "\n"), strings.TrimSpace(printed)
}

// wantIntact checks the daemon's files of image fp: sha256(metadata ||
// root) must be fp. The daemon does not check that itself after applying
// a delta (it checks each downloaded file against the catalog's sha256,
// not the root the delta rebuilt).
func (h *deltaHost) wantIntact(fp string) {
	h.t.Helper()
	dir := "/var/lib/incus/images"
	if got := fingerprintOf(h.t, filepath.Join(dir, fp), filepath.Join(dir, fp+".rootfs")); got != fp {
		h.t.Errorf("the daemon's files of image %s hash to %s", fp, got)
	}
}

// held returns the fingerprints of the images the daemon holds.
func (h *deltaHost) held() []string {
	h.t.Helper()
	var out []string
	for _, im := range h.incus.images(h.t, "local") {
		out = append(out, im.Fingerprint)
	}
	return out
}

// Deltas from the last versions, with the real Incus daemon (publish's
// default depth, 3): a host holding v1 (--auto-update) refreshes after v2
// and v3 are out and downloads the v1→v3 delta, neither the v2→v3 delta
// nor the root; a host holding v2 gets v2→v3. Each lands on v3 with files
// that hash to its fingerprint. Then a host holding two bases of one
// product (its auto-update image and an older copy): Incus's client
// applies every delta whose base it holds, one after the other, into the
// same file, and its check of the whole image (the fix of CVE-2026-33542)
// refuses the result: the refresh does nothing until the host holds one
// base only. A single delta per version never does that.
func TestDeltaDepthThroughIncusDaemon(t *testing.T) {
	requireLaunch(t, "1")
	requireTool(t, "incus")
	requireTool(t, "xdelta3")
	h := &deltaHost{t: t, reg: filepath.Join(t.TempDir(), "registry")}
	nginx, web := chain(t, "nginx", t0, 3), chain(t, "web", t0, 4)
	incusDaemon(t)
	h.publish(nginx[0])
	h.publish(web[0])
	// No catalog kept in edgeproxy's memory: each refresh follows a
	// publish made a moment before.
	url, cert, log := runEdgeproxyLogged(t, "--bucket", h.reg, "--catalog-ttl", "1ns")
	h.log, h.incus = log, newClient(t, "incus", cert)
	addRemote(t, h.incus, "appliance", url, cert)

	// A host holding v1 when v2 and v3 are out.
	h.incus.run(t, "image", "copy", "appliance:nginx", "local:", "--auto-update", "--alias", "nginx")
	h.publish(nginx[1])
	d3 := h.publish(nginx[2])
	v1, v2 := versionKey(0), versionKey(1)
	fetched, _ := h.refresh("nginx", nginx[2])
	t.Logf("host holding v1, refreshed to v3, downloaded:\n%s", fetched)
	wantFetched(t, fetched, []string{d3[v1].Path}, []string{d3[v2].Path, rootOf(nginx[2])})

	// A host holding v2 when v3 is out.
	h.publish(web[1])
	forgetCatalog(t)
	h.incus.run(t, "image", "copy", "appliance:web", "local:", "--auto-update", "--alias", "web")
	w3 := h.publish(web[2])
	w1, w2 := v1, v2
	fetched, _ = h.refresh("web", web[2])
	t.Logf("host holding v2, refreshed to v3, downloaded:\n%s", fetched)
	wantFetched(t, fetched, []string{w3[w2].Path}, []string{w3[w1].Path, rootOf(web[2])})

	// A host holding two bases: v3 (auto-update) and v2 (copied by
	// fingerprint, as an operator keeps the previous version for a
	// rollback). The client applies both deltas into one file, and its
	// check of the whole image fails: the refresh changes nothing (and
	// says so), for as long as two held versions are among the bases.
	h.incus.run(t, "image", "copy", "appliance:"+web[1].fp, "local:")
	if held := h.held(); len(held) != 3 {
		t.Fatalf("the daemon holds %v, want nginx v3 and web v2, v3", held)
	}
	w4 := h.publish(web[3])
	w3k := versionKey(2)
	fetched, printed := h.refresh("web", web[2])
	t.Logf("host holding v2 and v3, refreshing to v4, downloaded:\n%s\nincus said: %s", fetched, printed)
	wantFetched(t, fetched, []string{w4[w3k].Path, w4[w2].Path}, []string{w4[w1].Path, rootOf(web[3])})
	if log := daemonLog(); !strings.Contains(log, "Image fingerprint doesn't match") {
		t.Errorf("the daemon logged no fingerprint mismatch:\n%s", log)
	}
	h.wantIntact(web[1].fp) // the older copy is untouched
	// Deleting the older copy lets the next refresh through, by one delta.
	h.incus.run(t, "image", "delete", web[1].fp)
	fetched, _ = h.refresh("web", web[3])
	t.Logf("host holding v3 alone, refreshed to v4, downloaded:\n%s", fetched)
	wantFetched(t, fetched, []string{w4[w3k].Path}, []string{w4[w2].Path, w4[w1].Path, rootOf(web[3])})
	mustPublish(t, "verify", "--bucket", h.reg, "--deep")
}

// versionKey is the version key of the i-th version of a chain from t0.
func versionKey(i int) string { return catalog.VersionKey(t0.Add(time.Duration(i) * time.Hour)) }

// rootOf is the path of sample s's root in the registry.
func rootOf(s sample) string { return "images/" + s.fp + "/rootfs.squashfs" }

// wantFetched checks that the downloads include every path of want and
// none of unwanted.
func wantFetched(t *testing.T, fetched string, want, unwanted []string) {
	t.Helper()
	for _, p := range want {
		if p == "" || !strings.Contains(fetched, p) {
			t.Errorf("the refresh did not download %q", p)
		}
	}
	for _, p := range unwanted {
		if p != "" && strings.Contains(fetched, p) {
			t.Errorf("the refresh downloaded %s", p)
		}
	}
}
