package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/miniotest"
)

// The launch tests build real appliances with distrobuilder and run them
// in a real Incus daemon; they need root, take minutes, and run only when
// asked: REGISTRY_LAUNCH=1 (make test-launch) for nginx's whole workflow,
// REGISTRY_LAUNCH=all (make test-appliances) for every appliance.
func requireLaunch(t *testing.T, level string) {
	t.Helper()
	v := os.Getenv("REGISTRY_LAUNCH")
	if v == "" || level == "all" && v != "all" {
		t.Skipf("set REGISTRY_LAUNCH=%s (make test-launch / make test-appliances) to build and launch appliances", map[string]string{"1": "1", "all": "all"}[level])
	}
	if os.Geteuid() != 0 {
		t.Fatal("the launch tests need root (distrobuilder and incusd)")
	}
}

// repoRoot is the repository's top folder.
func repoRoot(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// incusDaemon starts the throw-away daemon and, at the end of the test,
// stops it and checks that nothing is left behind.
func incusDaemon(t *testing.T) {
	t.Helper()
	script := filepath.Join(repoRoot(t), "scripts", "incus-daemon.sh")
	run := func(arg string) {
		out, err := exec.Command(script, arg).CombinedOutput()
		if err != nil {
			t.Fatalf("incus-daemon.sh %s: %v\n%s", arg, err, out)
		}
	}
	run("stop") // a previous run's leftovers
	run("start")
	t.Cleanup(func() {
		run("stop")
		if out, _ := exec.Command("pgrep", "-f", "/usr/libexec/incus/incusd").Output(); len(strings.TrimSpace(string(out))) > 0 {
			// A zombie reaped late is not a leftover; a live one is.
			for _, pid := range strings.Fields(string(out)) {
				if st, _ := os.ReadFile("/proc/" + pid + "/stat"); !strings.Contains(string(st), ") Z ") {
					t.Errorf("incusd (pid %s) still running after stop", pid)
				}
			}
		}
		if _, err := os.Stat("/sys/class/net/incusbr0"); err == nil {
			t.Error("bridge incusbr0 left behind")
		}
		if _, err := os.Stat("/var/lib/incus"); err == nil {
			t.Error("/var/lib/incus left behind")
		}
	})
}

// buildAppliance runs `publish build` with fast squashfs compression.
func buildAppliance(t *testing.T, buildDir, name string, force bool) {
	t.Helper()
	buildApplianceIn(t, filepath.Join(repoRoot(t), "appliances"), buildDir, name, force)
}

// buildApplianceIn builds the default variant of an appliance of the
// appliances folder root.
func buildApplianceIn(t *testing.T, root, buildDir, name string, force bool) {
	t.Helper()
	args := []string{"build", name, "--variant", "default", "--appliances", root, "--build-dir", buildDir,
		"--compression", "gzip-1", "--cache-dir", buildCache()}
	if force {
		args = append(args, "--force")
	}
	start := time.Now()
	r := publish(t, args...)
	if r.code != 0 {
		t.Fatalf("publish build %s: %s\n%s", name, r.stderr, r.stdout)
	}
	t.Logf("publish build %s: %s", name, time.Since(start).Round(time.Second))
}

// buildCache is distrobuilder's work and download cache of the tests:
// APPLIANCE_BUILD_CACHE, default $TMPDIR/appliance-build-cache (builds of
// the same appliance must not share one at the same time).
func buildCache() string {
	if d := os.Getenv("APPLIANCE_BUILD_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "appliance-build-cache")
}

// instanceIPv4 waits for the container's eth0 IPv4 address.
func instanceIPv4(t *testing.T, c *client, name string) string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // generous: a busy machine
	for time.Now().Before(deadline) {
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
					return a.Address
				}
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s got no IPv4 address in 3 min", name)
	return ""
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
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(time.Second) {
		if h := a.Health.HTTP; h != nil {
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://%s:%d%s", ip, h.Port, h.Path))
			if err != nil {
				last = err.Error()
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == h.Status && strings.Contains(string(body), h.Contains) {
				t.Logf("%s (%s): GET :%d%s from the host → %d %q", name, ip, h.Port, h.Path, resp.StatusCode, strings.TrimSpace(string(body)))
				return
			}
			last = fmt.Sprintf("status %d, body %q", resp.StatusCode, body)
			continue
		}
		cmd := exec.Command(c.bin, append([]string{"exec", name, "--"}, a.Health.Command...)...)
		cmd.Env = c.env()
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Logf("%s (%s): health command %q passed", name, ip, a.Health.Command)
			return
		}
		last = fmt.Sprintf("%v: %s", err, out)
	}
	t.Fatalf("%s: health check failed for %s: %s", name, timeout, last)
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

// baseImage is the fingerprint an instance was created from.
func baseImage(t *testing.T, c *client, name string) string {
	return strings.TrimSpace(c.run(t, "config", "get", name, "volatile.base_image"))
}

// The whole workflow for nginx: build → publish to MinIO → edgeproxy with
// a self-signed certificate in front → Incus daemon → `incus launch
// appliance:nginx` → the health check passes from the host → publish a
// second version → `incus launch` picks the new fingerprint → tear down,
// leaving no process, bridge or state behind.
func TestLaunchNginxEndToEnd(t *testing.T) {
	requireLaunch(t, "1")
	requireTool(t, "distrobuilder")
	apps := copyAppliance(t, "nginx") // v2 changes a file of it
	a, err := appliance.Load(apps, "nginx")
	if err != nil {
		t.Fatal(err)
	}
	buildDir := t.TempDir()
	buildApplianceIn(t, apps, buildDir, "nginx", false)

	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"appliances"}})
	env := srv.Env()
	pub := func() string {
		out := mustPublishEnv(t, env, "nginx", "--bucket", "s3://appliances", "--build-dir", buildDir,
			"--appliances", apps, "--json")
		var res []struct{ Fingerprint string }
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 {
			t.Fatalf("publish output %q: %v", out, err)
		}
		return res[0].Fingerprint
	}
	fp1 := pub()
	url, cert := runEdgeproxy(t, env, "--bucket", "s3://appliances")

	incusDaemon(t)
	incus := newClient(t, "incus", cert)
	addRemote(t, incus, "appliance", url, cert)

	start := time.Now()
	incus.run(t, "launch", "appliance:nginx", "web1")
	t.Logf("incus launch appliance:nginx: %s", time.Since(start).Round(time.Millisecond))
	if got := baseImage(t, incus, "web1"); got != fp1 {
		t.Errorf("web1 runs %s, want %s", got, fp1)
	}
	healthy(t, incus, "web1", a)

	// A second version: one file changed (builds are reproducible: an
	// unchanged rebuild is the same image), rebuilt, published, launched.
	index := filepath.Join(apps, "nginx", "files", "index.html")
	if err := os.WriteFile(index, append([]byte(readFile(t, index)), "<!-- v2 -->\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	buildApplianceIn(t, apps, buildDir, "nginx", false)
	fp2 := pub()
	if fp2 == fp1 {
		t.Fatal("the rebuild has the same fingerprint")
	}
	// The daemon keeps a remote's catalog for an hour (in memory too): a
	// fresh host would see the new version at once, so does a fresh
	// remote URL (same proxy, by name instead of address).
	addRemote(t, incus, "appliance2", strings.Replace(url, "127.0.0.1", "localhost", 1), cert)
	incus.run(t, "launch", "appliance2:nginx", "web2")
	if got := baseImage(t, incus, "web2"); got != fp2 {
		t.Errorf("web2 runs %s, want the new version %s", got, fp2)
	}
	healthy(t, incus, "web2", a)
	mustPublishEnv(t, env, "verify", "--bucket", "s3://appliances")
}

// Every appliance in the repository builds and passes its health check in
// a launched container, and so does one written by `publish new` on the
// Debian 12 base (its generated check unchanged). A consumer (requires:)
// passes it alone first, unwired (its boot clean, its check saying what
// it proves then), then each relation is wired with the README's pipe to
// an instance of an appliance providing the interface, and its check
// passes again, now proving the dependency. Every build is clean
// (checked by publish build) and every published image has its SBOM.
// Builds are kept between runs (APPLIANCE_E2E_BUILDS, default
// $TMPDIR/appliance-e2e-builds): an appliance whose inputs did not change
// is not rebuilt.
func TestLaunchEveryAppliance(t *testing.T) {
	requireLaunch(t, "all")
	requireTool(t, "distrobuilder")
	root := filepath.Join(repoRoot(t), "appliances")
	names, err := appliance.Names(root)
	if err != nil {
		t.Fatal(err)
	}
	buildDir := os.Getenv("APPLIANCE_E2E_BUILDS")
	if buildDir == "" {
		buildDir = filepath.Join(os.TempDir(), "appliance-e2e-builds")
	}
	reg := filepath.Join(t.TempDir(), "registry")
	for _, name := range names {
		buildAppliance(t, buildDir, name, false)
		mustPublish(t, name, "--bucket", reg, "--build-dir", buildDir, "--appliances", root)
	}
	// An appliance written by publish new, on the bookworm base.
	newRoot := newApplianceRoot(t)
	mustPublish(t, "new", "hello", "--appliances", newRoot, "--base", "debian/bookworm", "--port", "80/tcp", "--package", "nginx-light", "--arch", "amd64")
	buildApplianceIn(t, newRoot, buildDir, "hello", false)
	mustPublish(t, "hello", "--bucket", reg, "--build-dir", buildDir, "--appliances", newRoot)
	if tmpl, err := os.ReadFile(filepath.Join(buildDir, "hello", "amd64", appliance.MergedTemplateName)); err != nil || !strings.Contains(string(tmpl), "release: bookworm") {
		t.Errorf("hello's merged template: %v\n%s", err, tmpl)
	}
	mustPublish(t, "verify", "--bucket", reg)
	var entries []struct {
		Product, SBOM string
	}
	if err := json.Unmarshal([]byte(mustPublish(t, "list", "--bucket", reg, "--json")), &entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.SBOM == "" {
			t.Errorf("%s was published without its SBOM", e.Product)
		}
	}
	if doc := mustPublish(t, "sbom", "nginx", "--bucket", reg); !strings.Contains(doc, `"name": "nginx-light"`) || !strings.Contains(doc, `"name": "systemd"`) {
		t.Errorf("publish sbom nginx:\n%.2000s", doc)
	}
	url, cert := runEdgeproxy(t, nil, "--bucket", reg)
	incusDaemon(t)
	incus := newClient(t, "incus", cert)
	addRemote(t, incus, "appliance", url, cert)
	launch := func(root, name string) {
		t.Run(name, func(t *testing.T) {
			a, err := appliance.Load(root, name)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			incus.run(t, "launch", "appliance:"+name, name+"-1")
			healthy(t, incus, name+"-1", a)
			t.Logf("%s: launched and healthy in %s", name, time.Since(start).Round(time.Second))
			if len(a.Requires) > 0 {
				wireToProviders(t, incus, root, names, name+"-1", a)
			}
			// One instance at a time: the machine is small.
			incus.run(t, "delete", "--force", name+"-1")
		})
	}
	for _, name := range names {
		launch(root, name)
	}
	launch(newRoot, "hello")
}

// wireToProviders launches, for each relation of the consumer, an
// instance of an appliance providing the interface (one that requires
// nothing), wires it with the pipe, checks the consumer's health again
// and deletes the providers.
func wireToProviders(t *testing.T, incus *client, root string, names []string, consumer string, a *appliance.Appliance) {
	t.Helper()
	bootedClean(t, incus, consumer, a)
	for _, r := range a.Requires {
		name, p := providerFor(t, root, names, r.Interface)
		// Not named after the consumer: incus list NAME matches every
		// instance whose name starts with NAME.
		inst := r.Name + "-provider"
		pa, err := appliance.Load(root, name)
		if err != nil {
			t.Fatal(err)
		}
		incus.run(t, "launch", "appliance:"+name, inst)
		defer incus.run(t, "delete", "--force", inst)
		healthy(t, incus, inst, pa)
		wirePipe(t, incus, inst, p, consumer, r)
		if again := wirePipe(t, incus, inst, p, consumer, r); !strings.HasPrefix(again, r.Name+": unchanged") {
			t.Errorf("wiring %s.%s again: %q, want unchanged", consumer, r.Name, again)
		}
	}
	healthy(t, incus, consumer, a)
	if !bootedClean(t, incus, consumer, a) {
		t.Errorf("%s: %s is not running once wired", consumer, a.Service.Unit)
	}
}
