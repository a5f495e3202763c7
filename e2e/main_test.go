// Package e2e runs the built `publish` binary against real registries and
// reads them with the real Incus and LXD clients.
//
// Set REGISTRY_E2E=require (as `make test` and CI do) to make a missing
// client a failure instead of a skip.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/osarch"
	"github.com/incus-appliance/registry/internal/tooltest"
)

// publishBin and edgeproxyBin are the binaries built for this test run.
var publishBin, edgeproxyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	publishBin, edgeproxyBin = filepath.Join(dir, "publish"), filepath.Join(dir, "edgeproxy")
	build := exec.Command("go", "build", "-o", dir, "../cmd/publish", "../cmd/edgeproxy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a command printed and how it exited.
type result struct {
	stdout, stderr string
	code           int
}

// publish runs the publish binary with args.
func publish(t testing.TB, args ...string) result {
	t.Helper()
	return publishEnv(t, nil, args...)
}

// publishEnv runs the publish binary with args and extra environment.
func publishEnv(t testing.TB, env []string, args ...string) result {
	t.Helper()
	return publishWithin(t, 2*time.Minute, env, args...)
}

// publishWithin runs the publish binary with args and extra environment,
// killing it after timeout.
func publishWithin(t testing.TB, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, publishBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run publish %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// mustPublish runs publish and fails the test unless it exits 0.
func mustPublish(t testing.TB, args ...string) string {
	t.Helper()
	return mustPublishEnv(t, nil, args...)
}

// mustPublishEnv is mustPublish with extra environment.
func mustPublishEnv(t testing.TB, env []string, args ...string) string {
	t.Helper()
	r := publishEnv(t, env, args...)
	if r.code != 0 {
		t.Fatalf("publish %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// list returns `publish list --json` of the registry folder reg.
func list(t testing.TB, reg string) []catalog.Entry {
	t.Helper()
	return listEnv(t, nil, reg)
}

// listEnv returns `publish list --json` of the registry at bucket, run
// with extra environment env.
func listEnv(t testing.TB, env []string, bucket string) []catalog.Entry {
	t.Helper()
	var es []catalog.Entry
	if err := json.Unmarshal([]byte(mustPublishEnv(t, env, "list", "--bucket", bucket, "--json")), &es); err != nil {
		t.Fatal(err)
	}
	return es
}

// requireTool returns the path of a client binary, skipping the test when
// it is missing unless REGISTRY_E2E=require (tooltest).
func requireTool(t testing.TB, name string) string {
	t.Helper()
	return tooltest.Require(t, name)[0]
}

// The launch tests build real appliances with distrobuilder and run them
// in a real Incus daemon; they need root, take minutes, and run only when
// asked: REGISTRY_LAUNCH=1 (make test-launch) for nginx's whole workflow,
// REGISTRY_LAUNCH=all (make test-appliances) for every appliance.
func requireLaunch(t *testing.T, level string) {
	t.Helper()
	value := level // "all": REGISTRY_LAUNCH=all only
	if level == "1" {
		value = "" // any REGISTRY_LAUNCH
	}
	requireAsked(t, "REGISTRY_LAUNCH", value,
		"set REGISTRY_LAUNCH="+level+" (make test-launch / make test-appliances) to build and launch appliances",
		"the launch tests need root (distrobuilder and incusd)")
}

// requireAsked gates a test that builds or launches for real: it is
// skipped (saying skip) unless the environment variable env is set, to
// value when value is not empty, and fails (saying needRoot) without root.
func requireAsked(t *testing.T, env, value, skip, needRoot string) {
	t.Helper()
	if v := os.Getenv(env); v == "" || value != "" && v != value {
		t.Skip(skip)
	}
	if os.Geteuid() != 0 {
		t.Fatal(needRoot)
	}
}

// stopwatch starts a clock for a step's log line; the function it
// returns is the time since, rounded to the millisecond (to the second
// from a minute on).
func stopwatch() func() time.Duration {
	start := time.Now()
	return func() time.Duration {
		d := time.Since(start)
		if d < time.Minute {
			return d.Round(time.Millisecond)
		}
		return d.Round(time.Second)
	}
}

// eventually calls ok every interval until it holds or within has passed,
// and says whether it held.
func eventually(within, every time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
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
		tooltest.Run(t, script, arg)
	}
	run("stop") // a previous run's leftovers
	run("start")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("incus.log:\n%s", daemonLog())
		}
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

// daemonLog is what the throw-away daemon logged so far.
func daemonLog() string {
	b, _ := os.ReadFile("/var/log/incus/incus.log")
	return string(b)
}

// The daemon targets (make test-release, test-appliances, test-launch,
// test-cloud, test-vm) build the repository's appliances into one shared
// folder, kept between runs: builds are reproducible and `publish build`
// and `publish release` skip an appliance whose inputs did not change, so
// each appliance is built once per run (not at all when unchanged), with
// one compression (gzip-1) and one distrobuilder cache. A test that
// changes an appliance, or adds to its build, works on a copy (builtCopy).

// sharedBuilds is the shared build folder: APPLIANCE_E2E_BUILDS (set by
// the Makefile), default $TMPDIR/appliance-e2e-builds.
func sharedBuilds() string {
	if d := os.Getenv("APPLIANCE_E2E_BUILDS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "appliance-e2e-builds")
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

// buildFlags are the flags every test build and release passes: the
// build folder, the compression and the cache all the daemon targets
// share.
func buildFlags(buildDir string) []string {
	return []string{"--build-dir", buildDir, "--compression", "gzip-1", "--cache-dir", buildCache()}
}

// repoAppliances is the repository's appliances folder.
func repoAppliances(t *testing.T) string {
	return filepath.Join(repoRoot(t), "appliances")
}

// buildIn runs `publish build NAME` for an appliance of the appliances
// folder root into buildDir: the given variants, or every variant the
// appliance lists; extra flags (--vm) follow.
func buildIn(t *testing.T, root, buildDir, name string, variants []string, extra ...string) {
	t.Helper()
	args := append([]string{"build", name, "--appliances", root}, buildFlags(buildDir)...)
	if len(variants) > 0 {
		args = append(args, "--variant", strings.Join(variants, ","))
	}
	took := stopwatch()
	r := longPublish(t, nil, append(args, extra...)...)
	if r.code != 0 {
		t.Fatalf("publish build %s %s: %s\n%s", name, strings.Join(variants, ","), r.stderr, r.stdout)
	}
	t.Logf("publish build %s %s %s: %s", name, strings.Join(variants, ","), strings.Join(extra, " "), took())
}

// buildShared builds a repository appliance (the given variants, or all)
// into the shared folder, which it returns.
func buildShared(t *testing.T, name string, variants ...string) string {
	t.Helper()
	buildIn(t, repoAppliances(t), sharedBuilds(), name, variants)
	return sharedBuilds()
}

// newApplianceRoot is a fresh appliances folder holding a copy of the
// repository's shared folders: the bases (appliances/_bases) and the
// interfaces appliances provide and require (appliances/_interfaces).
func newApplianceRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "appliances")
	for _, shared := range []string{"_bases", "_interfaces"} {
		copyInto(t, filepath.Join(repoAppliances(t), shared), root)
	}
	return root
}

// newWebAppliance makes appliance NAME with publish new (nginx-light
// serving 80/tcp, amd64) in a fresh appliances folder; it returns the
// folder and the appliance's appliance.yaml.
func newWebAppliance(t *testing.T, name string) (root, yml string) {
	t.Helper()
	root = newApplianceRoot(t)
	mustPublish(t, "new", name, "--appliances", root, "--port", "80/tcp", "--package", "nginx-light", "--arch", "amd64")
	return root, filepath.Join(root, name, "appliance.yaml")
}

// copyAppliance copies appliances/NAME into a fresh appliances folder
// (with the bases) and returns that folder.
func copyAppliance(t *testing.T, name string) string {
	t.Helper()
	root := newApplianceRoot(t)
	copyInto(t, filepath.Join(repoAppliances(t), name), root)
	return root
}

// stageDir is the build folder kept across runs, beside the shared
// builds, for one stage of a test that changes an appliance or adds to
// its build (a second version, a VM disk): a warm run whose inputs did not
// change builds nothing there.
func stageDir(stage string) string {
	return filepath.Join(sharedBuilds()+"-stages", stage)
}

// keptBuild is the kept build folder of stage (stageDir) for a build that
// starts from the shared build of name's default variant: a stage that
// has none yet gets a copy of it, when there is one.
func keptBuild(t *testing.T, stage, name string) string {
	t.Helper()
	dir := stageDir(stage)
	kept := builder.Target{Root: dir, Name: name, Arch: osarch.Host()}
	shared := builder.Target{Root: sharedBuilds(), Name: name, Arch: osarch.Host()}
	_, keptErr := os.Stat(kept.Dir())
	if _, err := os.Stat(shared.Dir()); keptErr != nil && err == nil {
		copySharedBuild(t, name, "", dir)
	}
	return dir
}

// keptFollowing is the kept build folder of stage (stageDir) for a build
// of name that must be newer than the one in the build folder prev, as
// version 2 follows version 1: a kept build that is not newer is dropped,
// to be built again.
func keptFollowing(t *testing.T, stage, name, prev string) string {
	t.Helper()
	dir := stageDir(stage)
	kept := builder.Target{Root: dir, Name: name, Arch: osarch.Host()}
	before := builder.Target{Root: prev, Name: name, Arch: osarch.Host()}
	k, kerr := os.Stat(kept.Metadata())
	p, perr := os.Stat(before.Metadata())
	if kerr == nil && (perr != nil || !k.ModTime().After(p.ModTime())) {
		t.Logf("%s: the kept build is not newer than the one it follows: built again", dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// copySharedBuild copies the shared build of name's variant into the
// build folder dir.
func copySharedBuild(t *testing.T, name, variant, dir string) {
	t.Helper()
	from := builder.Target{Root: sharedBuilds(), Name: name, Variant: variant, Arch: osarch.Host()}
	to := from
	to.Root = dir
	copyInto(t, from.Dir(), filepath.Dir(to.Dir()))
}

// copyInto copies the file or folder src into the folder dir (made if
// missing), keeping modes and times.
func copyInto(t *testing.T, src, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tooltest.Run(t, "cp", "-a", src, dir)
}

// builtCopy returns a fresh build folder holding a copy of the shared
// builds (this machine's architecture) of the given variants (or all) of
// the repository appliance name, built there first when due: a test that
// changes the appliance (a second version) or adds to its build (a VM
// disk) starts from the shared build and leaves it as the repository's
// appliance makes it. Only the variants asked for are in the copy: a
// publish from it publishes nothing else.
func builtCopy(t *testing.T, name string, variants ...string) string {
	t.Helper()
	buildShared(t, name, variants...)
	dir := t.TempDir()
	if len(variants) == 0 {
		copyInto(t, filepath.Join(sharedBuilds(), name), dir)
		return dir
	}
	for _, v := range variants {
		copySharedBuild(t, name, v, dir)
	}
	return dir
}

// lastLine is the last line of a command's output: the error line of a
// failed publish.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
