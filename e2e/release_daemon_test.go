package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
)

// requireRelease gates the release tests on a real daemon:
// REGISTRY_LAUNCH=release (make test-release).
func requireRelease(t *testing.T) {
	t.Helper()
	requireAsked(t, "REGISTRY_LAUNCH", "release",
		"set REGISTRY_LAUNCH=release (make test-release) to release appliances through a real Incus daemon",
		"the release tests need root (distrobuilder and incusd)")
	for _, tool := range []string{"distrobuilder", "incus", "xdelta3", "unsquashfs"} {
		requireTool(t, tool)
	}
}

// newestItems returns the items (ftype → path) of the newest version of
// product in the registry folder's catalog.
func newestItems(t *testing.T, reg, product string) (version string, items map[string]string) {
	t.Helper()
	var c struct {
		Products map[string]struct {
			Versions map[string]struct {
				Items map[string]struct{ Ftype, Path string }
			}
		}
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(reg, "streams/v1/images.json"))), &c); err != nil {
		t.Fatal(err)
	}
	for name, p := range c.Products {
		if !strings.HasPrefix(name, product+":") {
			continue
		}
		for v := range p.Versions {
			if v > version {
				version = v
			}
		}
		items = map[string]string{}
		for _, it := range p.Versions[version].Items {
			items[it.Ftype] = it.Path
		}
	}
	return version, items
}

// localFingerprint is the fingerprint of the local image with alias.
func localFingerprint(t *testing.T, c *client, alias string) string {
	t.Helper()
	for _, im := range c.images(t, "local") {
		for _, a := range im.Aliases {
			if a.Name == alias {
				return im.Fingerprint
			}
		}
	}
	t.Fatalf("no local image %q", alias)
	return ""
}

// forgetCatalog drops the daemon's on-disk copy of remote catalogs (kept
// an hour), as if that hour had passed.
func forgetCatalog(t *testing.T) {
	t.Helper()
	entries, _ := os.ReadDir("/var/cache/incus")
	for _, e := range entries {
		if e.IsDir() {
			os.RemoveAll(filepath.Join("/var/cache/incus", e.Name()))
		}
	}
}

// The operator's side of a release, with the real daemon: a host copies
// appliance:nginx with --auto-update; a new version (one changed file) is
// released through the gate; `incus image refresh` moves the host to it
// by downloading the delta, not the new root; an instance launched from
// it is healthy. Then a release whose gate fails (a health check that
// cannot pass) leaves images.json byte-identical and the host where it was.
func TestReleaseRefreshThroughIncusDaemon(t *testing.T) {
	requireRelease(t)
	apps, build, reg := copyAppliance(t, "nginx"), builtCopy(t, "nginx"), filepath.Join(t.TempDir(), "registry")
	release := func(wantCode int, build string) result {
		t.Helper()
		took := stopwatch()
		r := releaseRun(t, nil, append([]string{"nginx", "--appliances", apps, "--bucket", reg, "--no-update-check"}, buildFlags(build)...)...)
		t.Logf("publish release nginx: exit %d in %s\n%s", r.code, took(), r.stdout)
		if r.code != wantCode {
			t.Fatalf("publish release: exit %d, want %d\n%s\n%s", r.code, wantCode, r.stdout, r.stderr)
		}
		return r
	}

	incusDaemon(t)
	release(0, build)
	v1, _ := newestItems(t, reg, "nginx")
	url, cert, log := runEdgeproxyLogged(t, "--bucket", reg)
	incus := newClient(t, "incus", cert)
	addRemote(t, incus, "appliance", url, cert)
	took := stopwatch()
	incus.run(t, "image", "copy", "appliance:nginx", "local:", "--auto-update", "--alias", "nginx")
	t.Logf("incus image copy --auto-update: %s", took())
	fp1 := localFingerprint(t, incus, "nginx")
	if !strings.Contains(readFile(t, filepath.Join(reg, "streams/v1/images.json")), fp1) {
		t.Fatalf("the host's image %s is not version %s", fp1, v1)
	}

	// A new version: one changed file under files/ (built in a kept
	// folder, as is the broken build below: a warm run builds neither).
	index := filepath.Join(apps, "nginx/files/index.html")
	os.WriteFile(index, append([]byte(readFile(t, index)), "<!-- release 2 -->\n"...), 0o644)
	build2 := keptFollowing(t, "refresh-v2", "nginx", build)
	release(0, build2)
	v2, items2 := newestItems(t, reg, "nginx")
	if v2 == v1 {
		t.Fatalf("no new version after the second release (still %s)", v1)
	}
	forgetCatalog(t)
	from := log.len()
	took = stopwatch()
	incus.run(t, "image", "refresh", "nginx")
	t.Logf("incus image refresh: %s", took())
	fp2 := localFingerprint(t, incus, "nginx")
	if fp2 == fp1 || !strings.Contains(readFile(t, filepath.Join(reg, "streams/v1/images.json")), fp2) {
		t.Fatalf("after refresh the host has %s (was %s), not version %s", fp2, fp1, v2)
	}
	fetched := strings.Join(log.paths(from), "\n")
	t.Logf("refresh fetched:\n%s", fetched)
	// The delta (h15-delta): downloaded instead of the new root.
	if delta := items2["squashfs.vcdiff"]; delta == "" {
		t.Errorf("version %s has no squashfs.vcdiff item: publish made no delta", v2)
	} else if !strings.Contains(fetched, delta) {
		t.Errorf("refresh did not download the delta %s", delta)
	}
	if root := items2["squashfs"]; root == "" || strings.Contains(fetched, root) {
		t.Errorf("refresh downloaded the full new root %s", root)
	}
	a, err := appliance.Load(apps, "nginx")
	if err != nil {
		t.Fatal(err)
	}
	incus.run(t, "launch", "nginx", "web2")
	if got := baseImage(t, incus, "web2"); got != fp2 {
		t.Errorf("web2 runs %s, want %s", got, fp2)
	}
	healthy(t, incus, "web2", a)
	incus.run(t, "delete", "--force", "web2")

	// A release whose gate fails (a build whose health endpoint answers
	// 503; a change to appliance.yaml alone would not change the image,
	// builds being reproducible): nothing published, the host stays.
	site := filepath.Join(apps, "nginx/files/site.conf")
	os.WriteFile(site, []byte(strings.Replace(readFile(t, site), `return 200 "ok\n";`, `return 503 "broken\n";`, 1)), 0o644)
	yml := filepath.Join(apps, "nginx/appliance.yaml")
	os.WriteFile(yml, []byte(strings.Replace(readFile(t, yml), "timeout: 90", "timeout: 20", 1)), 0o644)
	before := readFile(t, filepath.Join(reg, "streams/v1/images.json"))
	r := release(1, keptFollowing(t, "refresh-broken", "nginx", build2))
	if line := lastLine(r.stderr); !strings.HasPrefix(line, "publish: error: nginx/amd64 failed the gate: health: GET :80/healthz did not pass in 20s: status 503") {
		t.Errorf("failing gate's error line: %q", line)
	}
	if readFile(t, filepath.Join(reg, "streams/v1/images.json")) != before {
		t.Error("a failed gate changed images.json")
	}
	forgetCatalog(t)
	incus.run(t, "image", "refresh", "nginx")
	if got := localFingerprint(t, incus, "nginx"); got != fp2 {
		t.Errorf("after a failed release the host moved to %s", got)
	}
	// The gate left no instance and no image behind.
	if out := incus.run(t, "list", "--format", "csv", "--columns", "n"); strings.TrimSpace(out) != "" {
		t.Errorf("instances left behind: %s", out)
	}
	if out := incus.run(t, "image", "list", "local:", "--format", "csv", "--columns", "f"); len(strings.Fields(out)) != 1 {
		t.Errorf("images in the daemon: %s, want only the host's copy", out)
	}
	mustPublish(t, "verify", "--bucket", reg)
}

// `publish release --all` with the real daemon: every shipped appliance
// is built, passes the gate (health, units, declared ports only, service
// not root, no sshd/getty, DHCP) and is published; a second run checks
// the recorded packages against the real Debian archive and publishes
// nothing new. Then the redis appliance's shipped profile (its data on a
// custom volume) keeps data written before `incus rebuild`.
func TestReleaseAllThroughIncusDaemon(t *testing.T) {
	requireRelease(t)
	root := filepath.Join(repoRoot(t), "appliances")
	names, err := appliance.Names(root)
	if err != nil {
		t.Fatal(err)
	}
	incusDaemon(t)
	build, reg := sharedBuilds(), filepath.Join(t.TempDir(), "registry")
	// The shared builds made before (by another target or run): release
	// publishes them after the gate without building them again.
	builtBefore := map[string]bool{}
	for _, n := range names {
		_, err := os.Stat(filepath.Join(build, n, "amd64", "build.json"))
		builtBefore[n] = err == nil
	}
	all := func(extra ...string) result {
		t.Helper()
		took := stopwatch()
		r := releaseRun(t, nil, append(append([]string{"--all", "--appliances", root, "--bucket", reg}, buildFlags(build)...), extra...)...)
		t.Logf("publish release --all %s: exit %d in %s\n%s", strings.Join(extra, " "), r.code, took(), r.stdout)
		if r.code != 0 {
			t.Fatalf("publish release --all: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		return r
	}
	r := all("--no-update-check")
	for _, n := range names {
		line := outputLine(r.stdout, "released "+n+"/amd64 ")
		if !strings.Contains(line, "gate passed") || !builtBefore[n] && !strings.Contains(line, "gate passed (never built)") {
			t.Errorf("%s was not released through the gate (built before: %v): %q", n, builtBefore[n], line)
		}
		var rep struct{ Passed bool }
		if err := json.Unmarshal([]byte(readFile(t, filepath.Join(build, n, "amd64", "gate.json"))), &rep); err != nil || !rep.Passed {
			t.Errorf("%s/amd64/gate.json: %+v %v", n, rep, err)
		}
	}
	before := readFile(t, filepath.Join(reg, "streams/v1/images.json"))
	r = all()
	for _, n := range names {
		if !strings.Contains(r.stdout, "unchanged "+n+"/amd64") && !strings.Contains(r.stdout, "released "+n+"/amd64") {
			t.Errorf("second run: %s neither unchanged nor released (a package update)", n)
		}
	}
	// A rebuild for package updates that installs the same versions means
	// the template does not build from the suites the image uses: every
	// run would rebuild and never ship the fixes.
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "unchanged ") && strings.Contains(line, "package update(s)") {
			t.Errorf("second run rebuilt for updates it did not install: %s", line)
		}
	}
	if !strings.Contains(r.stdout, "released") && readFile(t, filepath.Join(reg, "streams/v1/images.json")) != before {
		t.Error("a release of nothing new changed images.json")
	}

	t.Run("redis data survives incus rebuild", func(t *testing.T) {
		a, err := appliance.Load(root, "redis")
		if err != nil {
			t.Fatal(err)
		}
		redis := builder.Target{Root: build, Name: "redis", Arch: "amd64"}
		meta, rootfs := redis.Metadata(), redis.Rootfs()
		incus := newClient(t, "incus", "")
		incus.run(t, "image", "import", meta, rootfs, "--alias", "redis")
		incus.run(t, "profile", "create", "redis")
		incus.runIn(t, readFile(t, a.ProfilePath("redis")), "profile", "edit", "redis")
		incus.run(t, "storage", "volume", "create", "default", "redis-data")
		incus.run(t, "launch", "redis", "kv1", "--profile", "default", "--profile", "redis")
		healthy(t, incus, "kv1", a)
		cli := `REDISCLI_AUTH="$(cat /etc/redis/password)" redis-cli `
		incus.run(t, "exec", "kv1", "--", "sh", "-c", cli+"set appliance-key kept-across-rebuild && "+cli+"save")

		took := stopwatch()
		incus.run(t, "stop", "kv1")
		incus.run(t, "rebuild", "redis", "kv1")
		incus.run(t, "start", "kv1")
		t.Logf("stop, rebuild, start: %s", took())
		healthy(t, incus, "kv1", a)
		if got := strings.TrimSpace(incus.run(t, "exec", "kv1", "--", "sh", "-c", cli+"get appliance-key")); got != "kept-across-rebuild" {
			t.Errorf("after incus rebuild, appliance-key = %q", got)
		}
		// Without the volume the key would be gone: the root was replaced.
		if out := incus.run(t, "exec", "kv1", "--", "sh", "-c", "findmnt -n -o TARGET /var/lib/redis || grep ' /var/lib/redis ' /proc/mounts"); !strings.Contains(out, "/var/lib/redis") {
			t.Errorf("/var/lib/redis is not a mount: %q", out)
		}
	})
}

// outputLine is the first line of out that starts with prefix, or "".
func outputLine(out, prefix string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}
