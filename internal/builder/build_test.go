package builder

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/appliance/appliancetest"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/suitetest"
	"github.com/incus-appliance/registry/internal/tooltest"
)

const validYAML = appliancetest.ValidYAML

// web loads appliance web, written with yml as its appliance.yaml.
func web(t *testing.T, yml string) *appliance.Appliance {
	t.Helper()
	a, err := appliance.Load(appliancetest.Write(t, yml), "web")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// webAmd64 is web's default variant for amd64, built in root.
func webAmd64(root string) Target { return Target{Root: root, Name: "web", Arch: "amd64"} }

// fakeDistrobuilder writes a script that behaves like distrobuilder
// build-incus --compression gzip: it logs steps, counts its runs and writes
// incus.tar.gz + rootfs.squashfs into the target directory (or fails when
// $dir/fail exists).
func fakeDistrobuilder(t *testing.T) (bin, runs string) {
	t.Helper()
	dir := t.TempDir()
	bin, runs = filepath.Join(dir, "distrobuilder"), filepath.Join(dir, "runs")
	meta, rootfs := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "var/lib/dpkg"), 0o755)
	os.MkdirAll(filepath.Join(rootfs, "etc/apt"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "var/lib/dpkg/status"), []byte("Package: nginx-light\nStatus: install ok installed\nVersion: 1.22.1-9\n\nPackage: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u9\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc/apt/sources.list"), []byte("deb http://deb.debian.org/debian bookworm main\n"), 0o644)
	script := `#!/bin/sh
if [ "$1" = --version ]; then echo 3.2; exit 0; fi
echo run >> ` + runs + `
target=""; tmpl=""; prev=""; prev2=""
for a in "$@"; do
	if [ "$prev2" = build-incus ]; then target="$a"; fi
	if [ "$prev" = build-incus ]; then tmpl="$a"; cp "$a" ` + dir + `/template.yaml; fi
	prev2="$prev"; prev="$a"
done
# The template handed over is the base merged with the overlay.
grep -q systemd-networkd "$tmpl" || { echo "template $tmpl is not merged"; exit 1; }
echo "$SOURCE_DATE_EPOCH" > ` + dir + `/epoch
cat "$(command -v mksquashfs)" > ` + dir + `/mksquashfs
# Like distrobuilder: a fresh creation date and file times at every run.
n=$(wc -l < ` + runs + `)
printf 'architecture: x86_64\ncreation_date: %d\nexpiry_date: %d\nproperties:\n  os: debian\n  release: bookworm\n  variant: web\n  description: web\n  name: web-%d\n  serial: "%d"\n' $((1764092100 + n*60)) $((1766684100 + n*60)) $n $n > ` + meta + `/metadata.yaml
touch -d @$((1764092100 + n*60)) ` + meta + `/metadata.yaml
echo 'time="x" level=info msg="Downloading source"'
echo 'time="x" level=info msg="Managing packages"'
if [ -e ` + dir + `/fail ]; then
	echo 'E: Unable to locate package nginx-ligth'
	echo 'time="x" level=error msg="Failed running distrobuilder" err="Failed to manage packages: exit status 100"'
	echo 'time="x" level=info msg="Removing cache directory"'
	exit 1
fi
echo 'time="x" level=info msg="Creating squashfs"'
if [ -e ` + dir + `/dirty ]; then mkdir -p ` + rootfs + `/var/log; echo installed > ` + rootfs + `/var/log/dpkg.log; fi
tar -C ` + meta + ` -czf "$target/incus.tar.gz" metadata.yaml
# A real squashfs (the build reads the dpkg status out of it), the same
# bytes for the same content; $dir/rootchange and $dir/status change it.
cp -p ` + dir + `/rootchange ` + rootfs + `/rootchange 2>/dev/null || true
if [ -e ` + dir + `/status ]; then cp ` + dir + `/status ` + rootfs + `/var/lib/dpkg/status; fi
mksquashfs ` + rootfs + ` "$target/rootfs.squashfs" -noappend -quiet -no-progress >/dev/null
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, runs
}

func runs(t *testing.T, file string) int {
	data, _ := os.ReadFile(file)
	return strings.Count(string(data), "run")
}

func TestBuildIsIncrementalAndPublishesXZ(t *testing.T) {
	a := web(t, validYAML)
	bin, runFile := fakeDistrobuilder(t)
	target := webAmd64(t.TempDir())
	var steps []string
	opts := Options{Compression: "gzip-1", Distrobuilder: bin, Progress: func(s string) { steps = append(steps, s) }}
	res, err := Container(context.Background(), a, target, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped || runs(t, runFile) != 1 || strings.Join(steps, "|") != "Downloading source|Managing packages|Creating squashfs" {
		t.Fatalf("first build: %+v, %d runs, steps %v", res, runs(t, runFile), steps)
	}
	// The SBOM lists the root's packages.
	if doc, err := os.ReadFile(filepath.Join(res.Dir, "sbom.spdx.json")); err != nil || !strings.Contains(string(doc), `"name": "nginx-light"`) || !strings.Contains(string(doc), `"versionInfo": "1.22.1-9"`) {
		t.Errorf("SBOM beside the outputs: %v\n%s", err, doc)
	}
	// The merged template is kept beside the build log.
	if tmpl, err := os.ReadFile(target.Template()); err != nil || !strings.Contains(string(tmpl), "variant: web") {
		t.Errorf("merged template beside the log: %v\n%s", err, tmpl)
	}
	// The metadata tarball is republished as xz and inspects cleanly.
	if _, err := image.Inspect(context.Background(), res.Metadata, res.Rootfs, image.Options{Arch: "amd64"}); err != nil {
		t.Fatalf("built image does not inspect: %v", err)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "build.log")); err != nil {
		t.Error("no build log kept")
	}
	// The installed packages and APT sources are recorded beside it.
	if pkgs, err := installedPackages(res.Dir); err != nil || pkgs.Format() != "libc6\t2.36-9+deb12u9\nnginx-light\t1.22.1-9\n" {
		t.Errorf("recorded packages: %v %v", pkgs, err)
	}
	if src, err := aptSources(res.Dir); err != nil || len(src) != 1 || src[0].Suite != "bookworm" {
		t.Errorf("recorded sources: %v %v", src, err)
	}
	// Unchanged inputs: not rebuilt.
	if res, err = Container(context.Background(), a, target, opts); err != nil || !res.Skipped || runs(t, runFile) != 1 {
		t.Fatalf("second build: %+v %v, %d runs; want skipped", res, err, runs(t, runFile))
	}
	// --force, another compression, or a changed file: rebuilt.
	opts.Force = true
	if res, _ = Container(context.Background(), a, target, opts); res.Skipped || runs(t, runFile) != 2 {
		t.Errorf("forced build skipped")
	}
	opts.Force = false
	os.WriteFile(filepath.Join(a.Dir, "profiles", "web.yaml"), []byte("description: y\nconfig: {}\ndevices: {}\n"), 0o644)
	if res, _ = Container(context.Background(), a, target, opts); res.Skipped || runs(t, runFile) != 3 {
		t.Errorf("build after a change skipped")
	}
	if err := target.built(); err != nil || target.Metadata() != res.Metadata || target.Rootfs() != res.Rootfs {
		t.Errorf("Built = %v, outputs %s %s", err, res.Metadata, res.Rootfs)
	}
	arm64 := target
	arm64.Arch = "arm64"
	if err := arm64.built(); !errors.Is(err, errNotBuilt) || !strings.Contains(err.Error(), "web/arm64: not built") || !strings.Contains(err.Error(), "run `publish build web`") {
		t.Errorf("Built(arm64) = %v", err)
	}
}

// --build-dir is usually relative (".build"), while distrobuilder runs in
// the appliance folder.
func TestBuildWithRelativeBuildDir(t *testing.T) {
	a := web(t, validYAML)
	bin, _ := fakeDistrobuilder(t)
	t.Chdir(t.TempDir())
	res, err := Container(context.Background(), a, webAmd64(".build"), Options{Distrobuilder: bin})
	if err != nil {
		t.Fatal(err)
	}
	if err := webAmd64(".build").built(); err != nil || !filepath.IsAbs(res.Dir) {
		t.Errorf("Built(.build) = %v (outputs in %s)", err, res.Dir)
	}
}

func TestBuildFailureNamesTheStepAndKeepsTheLog(t *testing.T) {
	a := web(t, validYAML)
	bin, _ := fakeDistrobuilder(t)
	os.WriteFile(filepath.Join(filepath.Dir(bin), "fail"), nil, 0o644)
	out := t.TempDir()
	_, err := Container(context.Background(), a, webAmd64(out), Options{Distrobuilder: bin})
	if err == nil || !strings.Contains(err.Error(), `failed during step "Managing packages": Failed to manage packages: exit status 100`) {
		t.Fatalf("error = %v", err)
	}
	log := filepath.Join(out, "web", "amd64.failed.log")
	data, rerr := os.ReadFile(log)
	if rerr != nil || !strings.Contains(string(data), "Unable to locate package") || !strings.Contains(err.Error(), log) {
		t.Errorf("failed build log %s: %v %q", log, rerr, data)
	}
	if err := webAmd64(out).built(); err == nil {
		t.Error("a failed build left outputs")
	}
}

// A cancelled build stops distrobuilder and everything it started
// (debootstrap, apt, mksquashfs...), not distrobuilder alone: a child
// that outlives it would go on writing into the build's work folder and
// hold the log pipe open.
func TestCancelledBuildStopsItsChildren(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	// A "distrobuilder" whose child ignores nothing and would run for
	// an hour; the parent waits for it.
	script := "sleep 3600 &\necho $! > " + pidFile + ".tmp\nmv " + pidFile + ".tmp " + pidFile + "\necho started\nwait\n"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	done := make(chan error, 1)
	go func() { done <- runLogged(cmd, io.Discard, nil) }()

	var child int
	for deadline := time.Now().Add(time.Minute); child == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the child never started")
		}
		if data, err := os.ReadFile(pidFile); err == nil {
			child, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), `stopped during step "starting": the build was cancelled`) {
			t.Errorf("a cancelled build: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the cancelled build did not return")
	}
	for deadline := time.Now().Add(time.Minute); alive(child); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("distrobuilder's child %d still runs after the build was cancelled", child)
		}
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(data), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// Every build is checked: a root with a leftover log is refused and
// nothing replaces the previous outputs.
func TestBuildRefusesADirtyRoot(t *testing.T) {
	a := web(t, validYAML)
	bin, _ := fakeDistrobuilder(t)
	os.WriteFile(filepath.Join(filepath.Dir(bin), "dirty"), nil, 0o644)
	out := t.TempDir()
	_, err := Container(context.Background(), a, webAmd64(out), Options{Compression: "gzip-1", Distrobuilder: bin})
	if err == nil || !strings.Contains(err.Error(), "the built root is not clean: /var/log/dpkg.log: a log file left by the build") {
		t.Fatalf("error = %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "web", "amd64")); err == nil {
		t.Error("a dirty build left outputs")
	}
}

// inputsOf hashes the inputs of appliance web in root as a build does
// (the merged template standing for the base).
func inputsOf(t *testing.T, root string) string {
	t.Helper()
	a, err := appliance.Load(root, "web")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := a.Template()
	if err != nil {
		t.Fatal(err)
	}
	h, err := inputsHash(a.Dir, "v", "amd64", "xz", string(tmpl))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A change to the base is a change to the build's inputs; the same
// appliance and base in another folder are the same inputs.
func TestInputsFollowTheBaseNotThePath(t *testing.T) {
	root := appliancetest.Write(t, validYAML)
	before := inputsOf(t, root)
	if inputsOf(t, appliancetest.Write(t, validYAML)) != before {
		t.Error("the inputs hash depends on the appliances folder's path")
	}
	basePath := filepath.Join(root, appliance.BasesDir, "debian-bookworm.yaml")
	data, _ := os.ReadFile(basePath)
	os.WriteFile(basePath, []byte(strings.Replace(string(data), "iproute2", "iproute2, less", 1)), 0o644)
	if inputsOf(t, root) == before {
		t.Error("changing the base left the inputs hash unchanged")
	}
}

// Every appliance in the repository's template validates with
// distrobuilder, when it is installed.
func TestRepositoryTemplatesValidate(t *testing.T) {
	db, err := exec.LookPath("distrobuilder")
	if err != nil {
		t.Skip("distrobuilder not installed: templates checked by appliance.yaml rules only")
	}
	root := filepath.Join(appliancetest.Repository(), "appliances")
	names, err := appliance.Names(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		a, err := appliance.Load(root, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := ValidateTemplate(context.Background(), a, db); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// squash makes a squashfs of the files given (path → content).
func squash(t *testing.T, files map[string]string) string {
	t.Helper()
	suitetest.RequireTools(t, "mksquashfs")
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "rootfs.squashfs")
	tooltest.Run(t, "mksquashfs", root, out, "-noappend", "-quiet", "-no-progress")
	return out
}

var cleanRoot = map[string]string{
	"etc/machine-id":                  "",
	"etc/shadow":                      "root:*:20000:0:99999:7:::\nwww-data:*:20000:0:99999:7:::\nsystemd-network:!*:20000:::::1:\n",
	"var/log/nginx/access.log":        "",
	"var/lib/apt/lists/lock":          "",
	"var/cache/apt/archives/lock":     "",
	"root/.bashrc":                    "# fine\n",
	"usr/share/doc/x/changelog.gz":    "x",
	"var/lib/dpkg/status":             "Package: x\nStatus: install ok installed\nVersion: 1\n",
	"etc/ssh/sshd_config.d/empty.txt": "",
}

func TestCheckClean(t *testing.T) {
	if err := checkClean(context.Background(), squash(t, cleanRoot)); err != nil {
		t.Fatalf("a clean root: %v", err)
	}
	tests := []struct {
		name, path, content, want string
	}{
		{"machine id", "etc/machine-id", "0123456789abcdef0123456789abcdef\n", "/etc/machine-id: not empty"},
		{"dbus machine id", "var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n", "/var/lib/dbus/machine-id: dbus's id"},
		{"ssh host key", "etc/ssh/ssh_host_ed25519_key", "key", "/etc/ssh/ssh_host_ed25519_key: an SSH host key"},
		{"tls key", "etc/ssl/private/ssl-cert-snakeoil.key", "key", "/etc/ssl/private/ssl-cert-snakeoil.key: a TLS private key"},
		{"shell history", "root/.bash_history", "ls\n", "/root/.bash_history: shell history"},
		{"psql history", "home/app/.psql_history", "select 1;\n", "/home/app/.psql_history: shell history"},
		{"log", "var/log/dpkg.log", "installed\n", "/var/log/dpkg.log: a log file"},
		{"apt lists", "var/lib/apt/lists/deb.debian.org_debian_dists_trixie_InRelease", "x", "APT lists left"},
		{"apt cache", "var/cache/apt/archives/nginx_1.deb", "x", "APT cache left"},
		{"default password", "etc/shadow", "root:$y$j9T$abc$def:20000:0:99999:7:::\n", "/etc/shadow: root has a password set at build time"},
		{"empty password", "etc/shadow", "admin::20000:0:99999:7:::\n", "/etc/shadow: admin has an empty password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range cleanRoot {
				files[k] = v
			}
			files[tt.path] = tt.content
			err := checkClean(context.Background(), squash(t, files))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "the built root is not clean") {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}
