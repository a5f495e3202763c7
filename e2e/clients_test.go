package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/image/imagetest"
)

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

// simplestreams runs the real incus-simplestreams in the tree dir.
func simplestreams(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(requireTool(t, "incus-simplestreams"), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("incus-simplestreams %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// foreignImage writes a split image of another distribution (so that
// incus-simplestreams, which matches products by os/release/variant/arch,
// keeps it apart from our appliances).
func foreignImage(t testing.TB, created time.Time, seed int64) (meta, root string) {
	t.Helper()
	dir := t.TempDir()
	spec := imagetest.DefaultSpec("alpine", created)
	spec.OS, spec.Release, spec.Variant, spec.Description = "alpine", "3.20", "cloud", "Alpine 3.20 cloud"
	return imagetest.WriteMetadata(t, dir, spec), imagetest.WriteSquashfs(t, dir, 200<<10+int(seed), seed)
}

// remoteClient is a fresh client of tool (incus, lxc) trusting cert, with
// the SimpleStreams remote name for url added.
func remoteClient(t testing.TB, tool, name, url, cert string) *client {
	t.Helper()
	c := newClient(t, tool, cert)
	c.run(t, "remote", "add", name, url, "--protocol", "simplestreams")
	return c
}

// runErr runs the client and returns its output and error (no failure).
func (c *client) runErr(args ...string) (string, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// runIn runs an incus command with stdin.
func (c *client) runIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env, cmd.Stdin = c.env(), strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("incus %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// addRemote adds a SimpleStreams remote and pins its certificate: the
// client hands it to the daemon, which does the downloading.
func addRemote(t *testing.T, c *client, name, url, cert string) {
	t.Helper()
	c.run(t, "remote", "add", name, url, "--protocol", "simplestreams")
	dir := filepath.Join(c.home, ".config/incus/servercerts")
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem, 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantInfo checks that `image info ref` shows the image fp.
func (c *client) wantInfo(t testing.TB, ref, fp string) {
	t.Helper()
	if info := c.run(t, "image", "info", ref); !strings.Contains(info, "Fingerprint: "+fp) {
		t.Errorf("%s image info %s does not resolve to %s:\n%s", filepath.Base(c.bin), ref, fp, info)
	}
}

// wantExport exports ref (downloading and verifying it) and checks that
// the image written is fp; it returns the folder written to.
func (c *client) wantExport(t testing.TB, ref, fp string) string {
	t.Helper()
	out := t.TempDir()
	c.run(t, "image", "export", ref, out)
	if got := exportedFingerprint(t, out); got != fp {
		t.Errorf("%s image export %s wrote fingerprint %s, want %s", filepath.Base(c.bin), ref, got, fp)
	}
	return out
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
