package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
)

// The scenario several tests read through different fronts (a plain
// HTTPS file server, a MinIO bucket, edgeproxy): two versions of nginx,
// the second with the alias web.

// publishNginxAndWeb publishes v (two versions of nginx) with publish's
// flags (--bucket ...) and environment, the second with the alias web.
func publishNginxAndWeb(t testing.TB, env []string, v []sample, flags ...string) {
	t.Helper()
	publishSample(t, env, v[0], flags...)
	publishSample(t, env, v[1], append(flags, "--alias", "web")...)
}

// wantNginxAndWeb checks what c sees of it on remote: two images, the
// newest with the aliases nginx and web (and their /amd64 forms), web
// resolving to it, and an export of nginx writing it. It returns how long
// the export took.
func (c *client) wantNginxAndWeb(t testing.TB, remote string, v []sample) (export time.Duration) {
	t.Helper()
	if got := c.list(t, remote); len(got) != 2 || strings.Join(got[v[1].fp], ",") != "nginx,nginx/amd64,web,web/amd64" {
		t.Errorf("%s: image list = %v, want 2 images, the newest as nginx and web", remote, got)
	}
	c.wantInfo(t, remote+":web", v[1].fp)
	start := time.Now()
	c.wantExport(t, remote+":nginx", v[1].fp)
	return time.Since(start)
}

// wantTreeListed checks that got (a client's image list) holds the
// squashfs image of every version of the products of built (an sstest
// tree) of arch ("": all), and returns one of their fingerprints.
func wantTreeListed(t testing.TB, got map[string][]string, built *catalog.Catalog, arch string) (fp string) {
	t.Helper()
	for pk, p := range built.Products {
		if arch != "" && p.Arch != arch {
			continue
		}
		for _, v := range p.Versions {
			for _, it := range v.Items {
				if it.FType == catalog.FTypeIncusMeta && it.CombinedSquashfsSHA256 != "" {
					if _, ok := got[it.CombinedSquashfsSHA256]; !ok {
						t.Errorf("the client does not list %s's squashfs image %s", pk, it.CombinedSquashfsSHA256[:12])
					}
					fp = it.CombinedSquashfsSHA256
				}
			}
		}
	}
	if fp == "" {
		t.Fatalf("the tree has no squashfs image of arch %q", arch)
	}
	return fp
}

// Two appliances, one with two versions, published into a folder served by
// a plain HTTPS file server: the real Incus client lists them, resolves the
// alias to the newest version and exports (downloads and verifies) it; the
// LXD client lists the same images.
func TestIncusClientReadsPublishedRegistry(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry")
	nginx1m, nginx1r := sampleImage(t, "nginx", t0, 1)
	nginx2m, nginx2r := sampleImage(t, "nginx", t0.Add(24*time.Hour), 2)
	redism, redisr := sampleImage(t, "redis", t0, 3)
	mustPublish(t, "nginx", "--bucket", reg, "--metadata", nginx1m, "--rootfs", nginx1r)
	mustPublish(t, "nginx", "--bucket", "file://"+reg, "--metadata", nginx2m, "--rootfs", nginx2r, "--alias", "web")
	mustPublish(t, "redis", "--bucket", reg, "--metadata", redism, "--rootfs", redisr)
	mustPublish(t, "verify", "--bucket", reg)
	fp1, fp2, fpr := fingerprintOf(t, nginx1m, nginx1r), fingerprintOf(t, nginx2m, nginx2r), fingerprintOf(t, redism, redisr)

	url, cert := serveHTTPS(t, reg)
	incus := remoteClient(t, "incus", "reg", url, cert)
	got := incus.list(t, "reg")
	want := map[string][]string{
		fp1: nil,
		fp2: {"nginx", "nginx/amd64", "web", "web/amd64"},
		fpr: {"redis", "redis/amd64"},
	}
	if len(got) != len(want) {
		t.Fatalf("incus image list: %d images %v, want %d", len(got), got, len(want))
	}
	for fp, aliases := range want {
		if names, ok := got[fp]; !ok || strings.Join(names, ",") != strings.Join(aliases, ",") {
			t.Errorf("incus image list: image %s aliases %v (present %v), want %v", fp[:12], names, ok, aliases)
		}
	}
	for _, alias := range []string{"nginx", "web", "nginx/amd64"} {
		incus.wantInfo(t, "reg:"+alias, fp2)
	}
	out := incus.wantExport(t, "reg:nginx", fp2)
	if !sameFile(t, filepath.Join(out, "rootfs.squashfs"), nginx2r) {
		t.Error("exported root differs from the published one")
	}

	lxc := remoteClient(t, "lxc", "reg", url, cert)
	lxdGot := lxc.list(t, "reg")
	for fp := range want {
		if _, ok := lxdGot[fp]; !ok {
			t.Errorf("lxc image list does not show %s (got %v)", fp[:12], lxdGot)
		}
	}
	lxc.wantInfo(t, "reg:nginx", fp2)
}
