package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/ulikunitz/xz"
)

// fakeBuildTools writes a fake distrobuilder (a real split image: an
// incus.tar.gz and a squashfs holding a dpkg status and sources.list
// naming archiveURL) and a fake incus CLI whose behaviour follows the
// file `mode` in dir: "ok", "nodaemon" or "sshd". It returns the
// environment for publish.
func fakeBuildTools(t *testing.T, archiveURL string) (env []string, mode string) {
	t.Helper()
	dir := t.TempDir()
	mode = filepath.Join(dir, "mode")
	os.WriteFile(mode, []byte("ok"), 0o644)
	distrobuilder := `#!/bin/sh
set -e
if [ "$1" = --version ]; then echo 3.2; exit 0; fi
target=""; prev=""
for a in "$@"; do
	case "$prev" in *.yaml) target="$a";; esac
	prev="$a"
done
echo 'time="x" level=info msg="Downloading source"'
sleep 1 # version keys are to the second
work=$(mktemp -d)
mkdir -p $work/meta $work/root/var/lib/dpkg $work/root/etc/apt
printf 'architecture: x86_64\ncreation_date: %s\nproperties:\n  os: debian\n  release: bookworm\n  variant: web\n  description: web\n' $(date +%s) > $work/meta/metadata.yaml
printf 'Package: nginx-light\nStatus: install ok installed\nVersion: 1.22.1-9\n' > $work/root/var/lib/dpkg/status
echo "deb ` + archiveURL + ` bookworm main" > $work/root/etc/apt/sources.list
cp -r files $work/root/files
tar -C $work/meta -czf "$target/incus.tar.gz" metadata.yaml
mksquashfs $work/root "$target/rootfs.squashfs" -noappend -quiet -no-progress >/dev/null
rm -rf $work
`
	incus := `#!/bin/sh
mode=$(cat ` + mode + `)
case "$*" in
info) [ "$mode" = nodaemon ] && { echo "Error: The incus daemon doesn't appear to be started" >&2; exit 1; }; exit 0 ;;
"image import "*) echo "Image imported with fingerprint: $(cat $3 $4 | sha256sum | cut -c1-64)" ;;
*"ip -4 -o addr"*) echo '9: eth0    inet 10.201.7.248/24 metric 1024 brd 10.201.7.255 scope global dynamic eth0' ;;
*is-system-running*) echo running ;;
*/proc/net/tcp*) printf '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 64515 1 0 100 0 0 10 0\n' ;;
*"systemctl show -p MainPID"*) printf 'pid 160\nUid:\t33\t33\t33\t33\nwant 33\n' ;;
*/comm*) echo systemd nginx; [ "$mode" = sshd ] && echo sshd; exit 0 ;;
esac
exit 0
`
	for name, body := range map[string]string{"distrobuilder": distrobuilder, "incus": incus} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"PATH=" + dir + ":" + os.Getenv("PATH"), "INCUS_BIN=" + filepath.Join(dir, "incus")}, mode
}

// webAppliance writes appliances/web (health: a command; one port).
func webAppliance(t *testing.T) string {
	t.Helper()
	root := newApplianceRoot(t)
	dir := filepath.Join(root, "web")
	os.MkdirAll(filepath.Join(dir, "files"), 0o755)
	os.MkdirAll(filepath.Join(dir, "profiles"), 0o755)
	files := map[string]string{
		"appliance.yaml": "name: web\ndescription: a web server\nversion: 1.0.0\narchitectures: [amd64]\nbase: debian/bookworm\n" +
			"ports: [80/tcp]\nservice: {unit: nginx.service, user: www-data}\nhealthcheck:\n  command: [\"true\"]\n",
		"image.yaml":       "packages: [nginx-light]\n",
		"files/index.html": "v1\n",
	}
	for name, body := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	return root
}

// packagesIndex serves an archive whose bookworm main Packages.xz lists
// nginx-light at the version stored in version (the test changes it while
// the server runs, hence atomic: the requests come from another process).
func packagesIndex(t *testing.T, version *atomic.Pointer[string]) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debian/dists/bookworm/main/binary-amd64/Packages.xz" {
			http.NotFound(w, r)
			return
		}
		var b bytes.Buffer
		xw, _ := xz.NewWriter(&b)
		xw.Write([]byte("Package: nginx-light\nVersion: " + *version.Load() + "\n\nPackage: less\nVersion: 590-2\n"))
		xw.Close()
		w.Write(b.Bytes())
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/debian"
}

// releaseRun runs `publish release` (builds take time: a long deadline).
func releaseRun(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return longPublish(t, env, append([]string{"release"}, args...)...)
}

// longPublish runs publish with a deadline long enough for builds.
func longPublish(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return publishWithin(t, 30*time.Minute, env, args...)
}

// readFile is the text of the file at path.
func readFile(t *testing.T, path string) string {
	t.Helper()
	return string(filetest.Read(t, path))
}

// `publish release` with a fake distrobuilder and a fake incus: a gate
// that fails, or cannot run, publishes nothing (images.json byte
// identical, exit 1, the failing check in one line); --skip-gate says
// what it skipped; a passing gate publishes and prunes (--keep); an
// unchanged appliance publishes nothing new; --dry-run says why it would
// rebuild (inputs changed, package updates in the archive).
func TestReleaseGateDecidesWhatIsPublished(t *testing.T) {
	f := newFakeRelease(t)
	env, apps, build, reg, args := f.env, f.apps, f.build, f.reg, f.args
	catalog := filepath.Join(reg, "streams/v1/images.json")

	if r := releaseRun(t, env, args()...); r.code != 2 || !strings.Contains(r.stderr, "name the appliances to release, or give --all") {
		t.Errorf("release without names: exit %d, %s", r.code, r.stderr)
	}

	// v1 without the gate: published, with a loud warning.
	r := releaseRun(t, env, args("web", "--skip-gate")...)
	if r.code != 0 || !strings.Contains(r.stderr, "WARNING: --skip-gate") || !strings.Contains(r.stderr, "web/amd64: gate skipped") || !strings.Contains(r.stdout, "GATE SKIPPED") {
		t.Fatalf("release --skip-gate: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	v1 := readFile(t, catalog)

	// v2 (a changed file) with sshd running: nothing published.
	os.WriteFile(filepath.Join(apps, "web/files/index.html"), []byte("v2\n"), 0o644)
	f.setMode("sshd")
	r = releaseRun(t, env, args("web")...)
	if r.code != 1 || !strings.HasPrefix(lastLine(r.stderr), "publish: error: web/amd64 failed the gate: no-sshd-no-getty: running: sshd") {
		t.Fatalf("release with sshd: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if readFile(t, catalog) != v1 {
		t.Error("a failed gate changed images.json")
	}
	var rep struct {
		Passed bool
		Checks []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(build, "web/amd64/gate.json"))), &rep); err != nil || rep.Passed || len(rep.Checks) != 7 {
		t.Errorf("gate.json: %+v %v", rep, err)
	}

	// No daemon: a failure, not a skip.
	f.setMode("nodaemon")
	r = releaseRun(t, env, args("web")...)
	if r.code != 1 || !strings.Contains(r.stderr, "no Incus daemon reachable") || !strings.Contains(r.stderr, "--skip-gate") {
		t.Fatalf("release without a daemon: exit %d\n%s", r.code, r.stderr)
	}
	if readFile(t, catalog) != v1 {
		t.Error("a gate that could not run changed images.json")
	}

	// The gate passes: v2 goes out, and --keep 1 prunes v1 from the catalog.
	f.setMode("ok")
	r = releaseRun(t, env, args("web", "--keep", "1", "--json")...)
	var res struct {
		Items []struct {
			Outcome string
			Gate    struct{ Passed bool }
		}
		Pruned struct{ Removed []any }
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); r.code != 0 || err != nil || len(res.Items) != 1 || res.Items[0].Outcome != "released" || !res.Items[0].Gate.Passed || len(res.Pruned.Removed) != 1 {
		t.Fatalf("release: exit %d, %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "gate web/amd64: pass no-sshd-no-getty") {
		t.Errorf("the gate's checks are not printed:\n%s", r.stderr)
	}
	v2 := readFile(t, catalog)
	if v2 == v1 || len(list(t, reg)) != 1 {
		t.Errorf("after release: %v", list(t, reg))
	}

	// Nothing changed: nothing new, exit 0.
	r = releaseRun(t, env, args("web")...)
	if r.code != 0 || !strings.Contains(r.stdout, "unchanged web/amd64") || !strings.Contains(r.stdout, "nothing new") || readFile(t, catalog) != v2 {
		t.Fatalf("release of an unchanged appliance: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// --all --dry-run says what it would rebuild, and why.
	dry := func() string {
		t.Helper()
		r := releaseRun(t, env, args("--all", "--dry-run")...)
		if r.code != 0 {
			t.Fatalf("dry run: exit %d\n%s", r.code, r.stderr)
		}
		return r.stdout
	}
	if out := dry(); !strings.Contains(out, "up to date web/amd64") {
		t.Errorf("dry run, nothing changed: %s", out)
	}
	f.archive.Store(ptr("1.22.1-9+deb12u1"))
	if out := dry(); !strings.Contains(out, "would rebuild web/amd64 (1 package update(s): nginx-light 1.22.1-9 → 1.22.1-9+deb12u1)") {
		t.Errorf("dry run, a package update: %s", out)
	}
	os.WriteFile(filepath.Join(apps, "web/files/index.html"), []byte("v3\n"), 0o644)
	if out := dry(); !strings.Contains(out, "would rebuild web/amd64 (inputs changed") {
		t.Errorf("dry run, a changed file: %s", out)
	}
	if readFile(t, catalog) != v2 {
		t.Error("a dry run changed images.json")
	}

	// A package update the rebuild does not actually install (the fake
	// always installs 1.22.1-9): rebuilt, same versions, nothing new.
	os.WriteFile(filepath.Join(apps, "web/files/index.html"), []byte("v2\n"), 0o644)
	r = releaseRun(t, env, args("web")...)
	if r.code != 0 || !strings.Contains(r.stdout, "unchanged web/amd64 (1 package update(s)") || readFile(t, catalog) != v2 {
		t.Fatalf("release, rebuild with the same packages: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func ptr[T any](v T) *T { return &v }

// fakeRelease is the set-up of the release tests without Incus: fake
// build tools (fakeBuildTools) whose gate answers as setMode says, a
// Debian archive offering the version in archive (1.22.1-9 at first), the
// web appliance, a build folder and a registry folder.
type fakeRelease struct {
	env                        []string
	apps, build, reg, modeFile string
	archive                    *atomic.Pointer[string]
}

func newFakeRelease(t *testing.T) *fakeRelease {
	t.Helper()
	requireTool(t, "mksquashfs")
	requireTool(t, "unsquashfs")
	f := &fakeRelease{apps: webAppliance(t), build: t.TempDir(), reg: filepath.Join(t.TempDir(), "registry"), archive: &atomic.Pointer[string]{}}
	f.archive.Store(ptr("1.22.1-9"))
	f.env, f.modeFile = fakeBuildTools(t, packagesIndex(t, f.archive))
	return f
}

// args are publish release's flags for the set-up, then extra.
func (f *fakeRelease) args(extra ...string) []string {
	return append([]string{"--appliances", f.apps, "--build-dir", f.build, "--bucket", f.reg, "--compression", "gzip", "--arch", "amd64"}, extra...)
}

// setMode sets how the fake gate answers: "ok", "nodaemon" or "sshd".
func (f *fakeRelease) setMode(m string) { os.WriteFile(f.modeFile, []byte(m), 0o644) }

// `publish release` builds, gates and publishes every variant an
// appliance lists, like the default one (fake distrobuilder and incus): a
// passing gate publishes NAME and NAME/cloud, each gate's report beside
// its build; a gate failing for one variant publishes no variant of the
// appliance.
func TestReleaseGatesEveryVariant(t *testing.T) {
	f := newFakeRelease(t)
	env, apps, build, reg := f.env, f.apps, f.build, f.reg
	yml := filepath.Join(apps, "web/appliance.yaml")
	os.WriteFile(yml, append([]byte(readFile(t, yml)), "variants: [default, cloud]\n"...), 0o644)
	args := f.args("web", "--no-update-check")

	r := releaseRun(t, env, append(args, "--json")...)
	var res struct {
		Items []struct {
			Variant, Outcome string
			Gate             struct{ Passed bool }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); r.code != 0 || err != nil || len(res.Items) != 2 {
		t.Fatalf("release: exit %d, %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	for i, want := range []string{"", "cloud"} {
		if it := res.Items[i]; it.Variant != want || it.Outcome != "released" || !it.Gate.Passed {
			t.Errorf("item %d: %+v, want variant %q released through the gate", i, it, want)
		}
	}
	if !strings.Contains(r.stderr, "gate web/cloud/amd64: pass no-sshd-no-getty") {
		t.Errorf("the cloud variant's gate checks are not printed:\n%s", r.stderr)
	}
	for _, dir := range []string{"web/amd64", "web/cloud/amd64"} {
		readFile(t, filepath.Join(build, dir, "gate.json"))
	}
	products := map[string]bool{}
	for _, e := range list(t, reg) {
		products[e.Product] = true
	}
	if !products["web:1.0:amd64"] || !products["web/cloud:1.0:amd64"] || len(products) != 2 {
		t.Errorf("products %v, want web:1.0:amd64 and web/cloud:1.0:amd64 (version lines by default)", products)
	}

	// A new version whose gate fails: neither variant goes out.
	os.WriteFile(filepath.Join(apps, "web/files/index.html"), []byte("v2\n"), 0o644)
	f.setMode("sshd")
	before := readFile(t, filepath.Join(reg, "streams/v1/images.json"))
	r = releaseRun(t, env, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "web/amd64 failed the gate") || !strings.Contains(r.stderr, "web/cloud/amd64 failed the gate") {
		t.Errorf("release with sshd: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if readFile(t, filepath.Join(reg, "streams/v1/images.json")) != before {
		t.Error("a failed gate changed images.json")
	}
}
