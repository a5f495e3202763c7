package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/appliance"
)

// The cloud variant of nginx and redis, built, published as products
// NAME/cloud and launched in a real Incus daemon: user-data given with
// cloud-init.user-data configures the appliance (the site nginx serves,
// the redis password); without user-data it works with the same secure
// defaults as the default variant; user-data that is not valid YAML is
// refused by `publish check-user-data` before launch and by Incus at
// creation.
func TestLaunchCloudVariant(t *testing.T) {
	requireLaunch(t, "1")
	requireTool(t, "distrobuilder")
	root := filepath.Join(repoRoot(t), "appliances")
	buildDir, reg := sharedBuilds(), filepath.Join(t.TempDir(), "registry")
	apps := map[string]*appliance.Appliance{}
	for _, name := range []string{"nginx", "redis"} {
		a, err := appliance.Load(root, name)
		if err != nil {
			t.Fatal(err)
		}
		apps[name] = a
		buildShared(t, name, "cloud")
		mustPublish(t, name, "--bucket", reg, "--build-dir", buildDir, "--appliances", root)
	}
	mustPublish(t, "verify", "--bucket", reg)
	entries := list(t, reg)
	cloudProducts := 0
	for _, e := range entries {
		if e.Variant != "cloud" {
			continue // the default variant, in the shared build folder too
		}
		cloudProducts++
		if !slices.Contains(e.Aliases, strings.Split(e.Product, ":")[0]) || !strings.Contains(e.Product, "/cloud:") {
			t.Errorf("listed %+v: want products NAME/cloud with alias NAME/cloud", e)
		}
	}
	if cloudProducts != 2 {
		t.Errorf("publish list shows %d cloud-variant images, want 2 (nginx/cloud, redis/cloud): %+v", cloudProducts, entries)
	}

	site, _ := os.ReadFile("testdata/site.yaml")
	password, _ := os.ReadFile("testdata/redis-password.yaml")
	mustPublish(t, "check-user-data", "testdata/site.yaml")
	mustPublish(t, "check-user-data", "testdata/redis-password.yaml")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("#cloud-config\nwrite_files:\n- path: /var/www/html/index.html\n content: [not yaml\n"), 0o644)
	if r := publish(t, "check-user-data", bad); r.code != 1 || !strings.Contains(r.stderr, "not valid YAML") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		t.Errorf("check-user-data of bad YAML: exit %d, stderr %q", r.code, r.stderr)
	}

	url, cert := runEdgeproxy(t, nil, "--bucket", reg)
	incusDaemon(t)
	incus := newClient(t, "incus", cert)
	addRemote(t, incus, "appliance", url, cert)

	// nginx: the site comes from user-data.
	incus.run(t, "launch", "appliance:nginx/cloud", "web-cloud", "--config", "cloud-init.user-data="+string(site))
	healthy(t, incus, "web-cloud", apps["nginx"])
	waitBody(t, incus, "web-cloud", "/", "Configured by cloud-init")
	// No user-data: the default site, the same listening ports.
	incus.run(t, "launch", "appliance:nginx/cloud", "web-plain")
	healthy(t, incus, "web-plain", apps["nginx"])
	waitBody(t, incus, "web-plain", "/", "It works.")
	wantPorts(t, incus, "web-plain", "80")

	// redis: the password comes from user-data.
	incus.run(t, "launch", "appliance:redis/cloud", "kv-cloud", "--config", "cloud-init.user-data="+string(password))
	healthy(t, incus, "kv-cloud", apps["redis"])
	if out := execIn(t, incus, "kv-cloud", "sh", "-c", "REDISCLI_AUTH=CloudInitPassw0rd redis-cli ping"); strings.TrimSpace(out) != "PONG" {
		t.Errorf("redis-cli ping with the user-data password: %q", out)
	}
	// No user-data: a generated 32-character password, nothing without it.
	incus.run(t, "launch", "appliance:redis/cloud", "kv-plain")
	healthy(t, incus, "kv-plain", apps["redis"])
	if pw := execIn(t, incus, "kv-plain", "cat", "/etc/redis/password"); len(strings.TrimSpace(pw)) != 32 {
		t.Errorf("generated password %q, want 32 characters", pw)
	}
	if out := execIn(t, incus, "kv-plain", "redis-cli", "ping"); !strings.Contains(out, "NOAUTH") {
		t.Errorf("redis-cli ping without a password answered %q, want NOAUTH", out)
	}
	wantPorts(t, incus, "kv-plain", "6379")

	// Bad user-data: Incus 6.0 parses a cloud-config when the instance is
	// created and refuses one that is not YAML, creating nothing (and
	// check-user-data said so before launch, above).
	out, err := incus.runErr("launch", "appliance:nginx/cloud", "web-bad", "--config", "cloud-init.user-data="+readFile(t, bad))
	if err == nil || !strings.Contains(out, "yaml:") {
		t.Errorf("incus launch with bad user-data: err %v, output %s; want a YAML error", err, out)
	}
	if list := incus.run(t, "list", "web-bad", "--format", "csv", "--columns", "n"); strings.TrimSpace(list) != "" {
		t.Errorf("the refused launch left an instance: %q", list)
	}
	t.Logf("incus launch with bad user-data: %s", strings.TrimSpace(out))
}
