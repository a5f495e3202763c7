package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
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

// command is the client run with args in its own environment.
func (c *client) command(args ...string) *exec.Cmd {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env()
	return cmd
}

func (c *client) run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.runErr(args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(c.bin), strings.Join(args, " "), err, out)
	}
	return out
}

// listedImage is an image as `incus image list --format json` lists it.
type listedImage struct {
	Fingerprint  string `json:"fingerprint"`
	Type         string `json:"type"`
	Architecture string `json:"architecture"`
	Aliases      []struct {
		Name string `json:"name"`
	} `json:"aliases"`
	Properties map[string]string `json:"properties"`
}

// images lists the images of remote ("local" for the daemon's own).
func (c *client) images(t testing.TB, remote string) []listedImage {
	t.Helper()
	var images []listedImage
	if err := json.Unmarshal([]byte(c.run(t, "image", "list", remote+":", "--format", "json")), &images); err != nil {
		t.Fatal(err)
	}
	return images
}

// list maps the fingerprint of each image of remote to its aliases, sorted.
func (c *client) list(t testing.TB, remote string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, im := range c.images(t, remote) {
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
	out, err := c.command(args...).CombinedOutput()
	return string(out), err
}

// runIn runs an incus command with stdin.
func (c *client) runIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := c.command(args...)
	cmd.Stdin = strings.NewReader(stdin)
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

// incusExec runs a command in the instance and returns its output and
// error (no failure).
func incusExec(c *client, name string, args ...string) (string, error) {
	return c.runErr(append([]string{"exec", name, "--"}, args...)...)
}

// execIn runs a command in the instance and returns its output (failing
// the test only when incus itself cannot run it).
func execIn(t *testing.T, c *client, name string, args ...string) string {
	t.Helper()
	out, err := incusExec(c, name, args...)
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("incus exec %s %v: %v", name, args, err)
	}
	return out
}

// waitBody waits until GET path on the instance's port 80 contains want
// (cloud-init writes files a few seconds after the network is up).
func waitBody(t *testing.T, c *client, name, path, want string) {
	t.Helper()
	ip := instanceIPv4(t, c, name)
	var last string
	if !eventually(instanceWait, time.Second, func() bool {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://%s%s", ip, path))
		if err != nil {
			last = err.Error()
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = string(body)
		return strings.Contains(last, want)
	}) {
		t.Fatalf("%s: GET %s never contained %q; last: %q", name, path, want, last)
	}
}

// wantPorts checks the TCP ports listening in the instance: only the
// appliance's own (no sshd, nothing cloud-init added).
func wantPorts(t *testing.T, c *client, name string, ports ...string) {
	t.Helper()
	out := execIn(t, c, name, "ss", "-Hltn")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		addr := f[3]
		port := addr[strings.LastIndex(addr, ":")+1:]
		if !slices.Contains(got, port) {
			got = append(got, port)
		}
	}
	slices.Sort(got)
	if strings.Join(got, ",") != strings.Join(ports, ",") {
		t.Errorf("%s listens on TCP ports %v, want only %v:\n%s", name, got, ports, out)
	}
}

// instanceWait is how long a launched instance may take to come up
// (generous: a busy machine).
const instanceWait = 3 * time.Minute

// instanceIPv4 waits for the container's eth0 IPv4 address.
func instanceIPv4(t *testing.T, c *client, name string) string {
	t.Helper()
	var ip string
	if !eventually(instanceWait, time.Second, func() bool {
		var list []struct {
			State struct {
				Network map[string]struct {
					Addresses []struct{ Family, Address string }
				}
			}
		}
		if err := json.Unmarshal([]byte(c.run(t, "list", name, "--format", "json")), &list); err == nil && len(list) == 1 {
			for _, a := range list[0].State.Network["eth0"].Addresses {
				if a.Family == "inet" {
					ip = a.Address
					return true
				}
			}
		}
		return false
	}) {
		t.Fatalf("%s got no IPv4 address in %s", name, instanceWait)
	}
	return ip
}

// healthy runs the appliance's health check against a launched instance
// until it passes or its timeout expires.
func healthy(t *testing.T, c *client, name string, a *appliance.Appliance) {
	t.Helper()
	ip := instanceIPv4(t, c, name)
	timeout := time.Duration(a.Health.Timeout) * time.Second
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	var last string
	if !eventually(timeout, time.Second, func() bool {
		if h := a.Health.HTTP; h != nil {
			var ok bool
			if ok, last = probe(fmt.Sprintf("http://%s:%d%s", ip, h.Port, h.Path), h); ok {
				t.Logf("%s (%s): GET :%d%s from the host → %s", name, ip, h.Port, h.Path, last)
			}
			return ok
		}
		out, err := incusExec(c, name, a.Health.Command...)
		if err == nil {
			t.Logf("%s (%s): health command %q passed", name, ip, a.Health.Command)
			return true
		}
		last = fmt.Sprintf("%v: %s", err, out)
		return false
	}) {
		t.Fatalf("%s: health check failed for %s: %s", name, timeout, last)
	}
}

// baseImage is the fingerprint an instance was created from.
func baseImage(t *testing.T, c *client, name string) string {
	return strings.TrimSpace(c.run(t, "config", "get", name, "volatile.base_image"))
}

// probe GETs url once and says whether the answer passes the HTTP health
// check h (its status, and a body containing h.Contains); it describes
// the answer, or why there was none.
func probe(url string, h *appliance.HTTPCheck) (ok bool, answer string) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return false, err.Error()
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == h.Status && strings.Contains(string(body), h.Contains) {
		return true, fmt.Sprintf("%d %q", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return false, fmt.Sprintf("status %d, body %q", resp.StatusCode, body)
}
