package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/miniotest"
)

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
	buildDir := builtCopy(t, "nginx", "default")
	buildIn(t, apps, buildDir, "nginx", []string{"default"}) // the copy is up to date

	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"appliances"}})
	env := srv.Env()
	pub := func(buildDir string) string {
		out := mustPublishEnv(t, env, "nginx", "--bucket", "s3://appliances", "--build-dir", buildDir,
			"--appliances", apps, "--json")
		var res []struct{ Fingerprint string }
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 {
			t.Fatalf("publish output %q: %v", out, err)
		}
		return res[0].Fingerprint
	}
	fp1 := pub(buildDir)
	url, cert := runEdgeproxy(t, env, "--bucket", "s3://appliances")

	incusDaemon(t)
	incus := newClient(t, "incus", cert)
	addRemote(t, incus, "appliance", url, cert)

	took := stopwatch()
	incus.run(t, "launch", "appliance:nginx", "web1")
	t.Logf("incus launch appliance:nginx: %s", took())
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
	build2 := keptFollowing(t, "launch-v2", "nginx", buildDir)
	buildIn(t, apps, build2, "nginx", []string{"default"})
	fp2 := pub(build2)
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
// Builds go to the shared build folder (kept between runs: an appliance
// whose inputs did not change is not rebuilt).
func TestLaunchEveryAppliance(t *testing.T) {
	requireLaunch(t, "all")
	requireTool(t, "distrobuilder")
	root := filepath.Join(repoRoot(t), "appliances")
	names, err := appliance.Names(root)
	if err != nil {
		t.Fatal(err)
	}
	buildDir, reg := sharedBuilds(), filepath.Join(t.TempDir(), "registry")
	var apps []*appliance.Appliance
	for _, name := range names {
		a, err := appliance.Load(root, name)
		if err != nil {
			t.Fatal(err)
		}
		apps = append(apps, a)
	}
	// Providers first: the registry refuses a consumer with no provider.
	for _, a := range appliance.ProvidersFirst(apps) {
		buildShared(t, a.Name, "default")
		mustPublish(t, a.Name, "--bucket", reg, "--build-dir", buildDir, "--appliances", root)
	}
	// An appliance written by publish new, on the bookworm base.
	newRoot := newApplianceRoot(t)
	mustPublish(t, "new", "hello", "--appliances", newRoot, "--base", "debian/bookworm", "--port", "80/tcp", "--package", "nginx-light", "--arch", "amd64")
	buildIn(t, newRoot, buildDir, "hello", []string{"default"})
	mustPublish(t, "hello", "--bucket", reg, "--build-dir", buildDir, "--appliances", newRoot)
	if tmpl, err := os.ReadFile(builder.Target{Root: buildDir, Name: "hello", Arch: "amd64"}.Template()); err != nil || !strings.Contains(string(tmpl), "release: bookworm") {
		t.Errorf("hello's merged template: %v\n%s", err, tmpl)
	}
	mustPublish(t, "verify", "--bucket", reg)
	entries := list(t, reg)
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
	// Version lines by default: NAME/MAJOR and NAME/MAJOR.MINOR resolve.
	for _, a := range apps {
		line, _ := catalog.LineOf(a.Version)
		major, _, _ := strings.Cut(line, ".")
		for _, ref := range []string{a.Name + "/" + major, a.Name + "/" + line} {
			incus.run(t, "image", "info", "appliance:"+ref)
		}
	}
	launch := func(root, name string) {
		t.Run(name, func(t *testing.T) {
			a, err := appliance.Load(root, name)
			if err != nil {
				t.Fatal(err)
			}
			took := stopwatch()
			incus.run(t, "launch", "appliance:"+name, name+"-1")
			healthy(t, incus, name+"-1", a)
			t.Logf("%s: launched and healthy in %s", name, took())
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
