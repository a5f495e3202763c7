package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

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
