package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/filetest"
)

// remove → prune --dry-run changes nothing → prune with the default grace
// keeps the removed files downloadable → prune --grace 0s deletes them.
func TestRemoveAndPruneThroughTheCLI(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry")
	v := chain(t, "nginx", t0, 2) // the second a small change: it gets a delta
	for _, s := range v {
		publishSample(t, nil, s, "--bucket", reg)
	}
	fp1 := v[0].fp

	out := mustPublish(t, "remove", "--bucket", reg, fp1[:12])
	if !strings.Contains(out, "removed nginx:amd64 version 20261120_120000") {
		t.Errorf("remove printed %q", out)
	}
	before := filetest.Snapshot(t, reg)
	out = mustPublish(t, "prune", "--bucket", reg, "--grace", "0s", "--dry-run")
	if !strings.Contains(out, "would delete images/"+fp1+"/rootfs.squashfs") {
		t.Errorf("prune --dry-run printed %q", out)
	}
	after := filetest.Snapshot(t, reg)
	if len(before) != len(after) {
		t.Fatalf("prune --dry-run changed the tree: %d files before, %d after", len(before), len(after))
	}
	for p, b := range before {
		if after[p] != b {
			t.Errorf("prune --dry-run changed %s", p)
		}
	}

	// Removed a moment ago: the default grace keeps it downloadable.
	out = mustPublish(t, "prune", "--bucket", reg)
	if !strings.Contains(out, "0 files deleted") {
		t.Errorf("prune with the default grace printed %q", out)
	}
	url, cert := serveHTTPS(t, reg)
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(url + "/images/" + fp1 + "/rootfs.squashfs")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want, _ := os.ReadFile(v[0].root)
	if resp.StatusCode != 200 || string(body) != string(want) {
		t.Errorf("removed image's root: HTTP %d, %d bytes; want 200 and the file", resp.StatusCode, len(body))
	}

	// The removed version's two files, and the second version's delta
	// from it (a delta whose base left the catalog goes with it).
	r := publish(t, "prune", "--bucket", reg, "--grace", "0s")
	if r.code != 0 || !strings.Contains(r.stdout, "3 files deleted") || !strings.Contains(r.stderr, "warning: --grace 0s") {
		t.Errorf("prune --grace 0s: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(reg, "images", fp1)); !os.IsNotExist(err) {
		t.Errorf("images/%s still there after prune: %v", fp1, err)
	}
	mustPublish(t, "verify", "--bucket", reg)
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, cmd := range [][]string{{"--help"}, {"list", "--help"}, {"verify", "--help"}, {"remove", "--help"}, {"prune", "--help"}, {"publish", "--help"}, {"mirror", "--help"}, {"release", "--help"}} {
		r := publish(t, cmd...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage: publish") {
			t.Errorf("publish %v: exit %d, stdout %q", cmd, r.code, r.stdout)
		}
	}
}
