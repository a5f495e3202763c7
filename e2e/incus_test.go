package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/image/imagetest"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// sampleImage writes a small split image and returns its two paths.
func sampleImage(t testing.TB, name string, created time.Time, seed int64) (meta, root string) {
	t.Helper()
	dir := t.TempDir()
	return imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec(name, created)),
		imagetest.WriteSquashfs(t, dir, 256<<10+int(seed), seed)
}

// fingerprintOf is sha256(meta || root), computed independently.
func fingerprintOf(t testing.TB, files ...string) string {
	t.Helper()
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// client runs an Incus or LXD client with its own fresh configuration and
// trusting only the registry's certificate.
type client struct {
	bin, home, cert string
}

func newClient(t testing.TB, name, cert string) *client {
	c := &client{bin: requireTool(t, name), home: t.TempDir(), cert: cert}
	for _, d := range []string{".config/incus", ".config/lxc", ".cache"} {
		os.MkdirAll(filepath.Join(c.home, d), 0o755)
	}
	return c
}

// env is the client's environment: its own HOME and configuration, and
// trust in the registry's certificate only.
func (c *client) env() []string {
	return append(os.Environ(), "HOME="+c.home, "SSL_CERT_FILE="+c.cert,
		"INCUS_CONF="+filepath.Join(c.home, ".config/incus"), "LXD_CONF="+filepath.Join(c.home, ".config/lxc"))
}

func (c *client) run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(c.bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

type listedImage struct {
	Fingerprint  string `json:"fingerprint"`
	Architecture string `json:"architecture"`
	Aliases      []struct {
		Name string `json:"name"`
	} `json:"aliases"`
	Properties map[string]string `json:"properties"`
}

func (c *client) list(t testing.TB, remote string) map[string][]string {
	t.Helper()
	var images []listedImage
	if err := json.Unmarshal([]byte(c.run(t, "image", "list", remote+":", "--format", "json")), &images); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, im := range images {
		var names []string
		for _, a := range im.Aliases {
			names = append(names, a.Name)
		}
		slices.Sort(names)
		out[im.Fingerprint] = names
	}
	return out
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
	incus := newClient(t, "incus", cert)
	incus.run(t, "remote", "add", "reg", url, "--protocol", "simplestreams")
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
		if info := incus.run(t, "image", "info", "reg:"+alias); !strings.Contains(info, "Fingerprint: "+fp2) {
			t.Errorf("incus image info reg:%s does not resolve to the newest version %s:\n%s", alias, fp2, info)
		}
	}
	out := t.TempDir()
	incus.run(t, "image", "export", "reg:nginx", out)
	if f := exportedFingerprint(t, out); f != fp2 {
		t.Errorf("incus image export wrote an image with fingerprint %s, want %s", f, fp2)
	}
	if !sameFile(t, filepath.Join(out, "rootfs.squashfs"), nginx2r) {
		t.Error("exported root differs from the published one")
	}

	lxc := newClient(t, "lxc", cert)
	lxc.run(t, "remote", "add", "reg", url, "--protocol", "simplestreams")
	lxdGot := lxc.list(t, "reg")
	for fp := range want {
		if _, ok := lxdGot[fp]; !ok {
			t.Errorf("lxc image list does not show %s (got %v)", fp[:12], lxdGot)
		}
	}
	if info := lxc.run(t, "image", "info", "reg:nginx"); !strings.Contains(info, "Fingerprint: "+fp2) {
		t.Errorf("lxc image info reg:nginx does not resolve to %s:\n%s", fp2, info)
	}
}

// exportedFingerprint is the fingerprint of the split image `incus image
// export` wrote into dir (metadata tarball first, then the root).
func exportedFingerprint(t testing.TB, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	slices.Sort(files) // incus.tar.xz sorts before rootfs.squashfs
	if len(files) != 2 {
		t.Fatalf("export wrote %v, want 2 files", files)
	}
	return fingerprintOf(t, files...)
}

func sameFile(t testing.TB, a, b string) bool {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	ba, _ := io.ReadAll(fa)
	bb, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ba) == string(bb)
}
