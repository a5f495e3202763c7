package e2e

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/gate"
	"github.com/incus-appliance/registry/internal/osarch"
	"github.com/incus-appliance/registry/internal/release"
	"github.com/incus-appliance/registry/internal/semver"
)

// The stack gate with the real daemon: `publish release miniflux
// postgresql` (named consumer first) releases postgresql first, then
// gates miniflux with that fresh postgresql launched, wired through the
// hooks and checked: miniflux's health check answers from the database.
// miniflux alone into a registry without postgresql goes nowhere. Then a
// postgresql whose provider hook is broken (brokenPostgresql): released
// into that registry, the re-gate of the published miniflux fails and
// names it; published without a gate into a registry of its own, it
// fails miniflux's gate on relation db. Neither publishes anything.
func TestReleaseStackThroughIncusDaemon(t *testing.T) {
	requireRelease(t)
	build := builtCopy(t, "postgresql", "default")
	buildShared(t, "miniflux", "default")
	from := builder.Target{Root: sharedBuilds(), Name: "miniflux", Arch: osarch.Host()}
	to := from
	to.Root = build
	copyInto(t, from.Dir(), filepath.Dir(to.Dir()))
	brokenApps, brokenBuild := brokenPostgresql(t)
	apps := repoAppliances(t)

	incusDaemon(t)
	// Alone, without a provider anywhere: the gate fails naming the
	// relation, nothing is published.
	empty := filepath.Join(t.TempDir(), "empty")
	r, rep := releaseJSON(t, apps, build, empty, "miniflux")
	if r.code == 0 || len(rep.Items) != 1 || rep.Items[0].Outcome != release.GateFailed || !strings.Contains(r.stderr, "relation db needs postgresql") {
		t.Errorf("miniflux alone: exit %d, %+v\n%s", r.code, rep, r.stderr)
	}

	reg := filepath.Join(t.TempDir(), "registry")
	r, rep = releaseJSON(t, apps, build, reg, "miniflux", "postgresql")
	if r.code != 0 || len(rep.Items) != 2 || rep.Items[0].Name != "postgresql" || rep.Items[1].Name != "miniflux" {
		t.Fatalf("release: exit %d, %+v\n%s", r.code, rep, r.stderr)
	}
	mf := rep.Items[1]
	if c := checkNamed(mf.Gate, gate.CheckRelation("db")); c == nil || mf.Outcome != release.Released || !mf.Gate.Passed || !strings.Contains(c.Detail, "(released in this run): db: configured") {
		t.Errorf("miniflux's gate: %+v", mf)
	}
	if !strings.Contains(r.stderr, "gate miniflux/"+osarch.Host()+": with its providers: db ← postgresql") {
		t.Errorf("the gate did not say which provider it launched:\n%s", r.stderr)
	}
	mustPublish(t, "verify", "--bucket", reg)

	// The broken postgresql released into it: its own gate passes, the
	// re-gate of the published miniflux with it fails, naming miniflux.
	before := filetest.Snapshot(t, reg)
	r, rep = releaseJSON(t, brokenApps, brokenBuild, reg, "postgresql")
	t.Logf("broken postgresql released over miniflux: exit %d: %s", r.code, lastLine(r.stderr))
	if r.code == 0 || len(rep.Items) != 1 || rep.Items[0].Outcome != release.GateFailed {
		t.Errorf("broken postgresql: exit %d, %+v\n%s", r.code, rep, r.stderr)
	} else if f := rep.Items[0].Gate.Failed(); f == nil || f.Name != release.CheckConsumer("miniflux") || !strings.Contains(f.Detail, "miniflux ") || !strings.Contains(f.Detail, "relation db") {
		t.Errorf("broken postgresql's failed check: %+v", f)
	}
	if !strings.Contains(lastLine(r.stderr), "failed the gate: consumer miniflux: miniflux ") {
		t.Errorf("the error does not name miniflux: %s", lastLine(r.stderr))
	}
	if !maps.Equal(filetest.Snapshot(t, reg), before) {
		t.Error("a provider that breaks its consumer changed the registry")
	}

	// Published without a gate into a registry of its own, the broken
	// postgresql fails miniflux's gate on relation db.
	alone := filepath.Join(t.TempDir(), "broken")
	mustPublish(t, "publish", "postgresql", "--appliances", brokenApps, "--build-dir", brokenBuild, "--bucket", alone)
	before = filetest.Snapshot(t, alone)
	r, rep = releaseJSON(t, brokenApps, build, alone, "miniflux")
	t.Logf("miniflux released over the broken postgresql: exit %d: %s", r.code, lastLine(r.stderr))
	if r.code == 0 || len(rep.Items) != 1 || rep.Items[0].Outcome != release.GateFailed {
		t.Errorf("miniflux over the broken postgresql: exit %d, %+v\n%s", r.code, rep, r.stderr)
	} else if f := rep.Items[0].Gate.Failed(); f == nil || f.Name != gate.CheckRelation("db") || !strings.Contains(f.Detail, "from postgresql ") {
		t.Errorf("miniflux's failed check: %+v", f)
	}
	if !strings.Contains(lastLine(r.stderr), "failed the gate: relation db: ") {
		t.Errorf("the error does not name the relation: %s", lastLine(r.stderr))
	}
	if !maps.Equal(filetest.Snapshot(t, alone), before) {
		t.Error("miniflux failing its gate changed the registry")
	}
}

// releaseJSON runs `publish release --json` of names from the appliances
// folder apps and the build folder build into the registry folder reg.
func releaseJSON(t *testing.T, apps, build, reg string, names ...string) (result, release.Result) {
	t.Helper()
	args := append(append(names, "--appliances", apps, "--bucket", reg, "--no-update-check", "--keep", "0", "--json"), buildFlags(build)...)
	r := releaseRun(t, nil, args...)
	var rep release.Result
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("release %v: exit %d, %v\n%s\n%s", names, r.code, err, r.stdout, r.stderr)
	}
	return r, rep
}

// checkNamed is the report's check called name (nil if none).
func checkNamed(rep *gate.Report, name string) *gate.Check {
	if rep == nil {
		return nil
	}
	i := slices.IndexFunc(rep.Checks, func(c gate.Check) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	return &rep.Checks[i]
}

// brokenPostgresql returns an appliances folder (with the bases, the
// interfaces and miniflux) whose postgresql is the repository's at its
// next patch version, which miniflux's constraint allows, with a broken
// provider hook: its SQL gives the consumer's database to a role it
// never made, so the hook fails and the consumer gets no database. It
// is built into a folder kept across runs (not again while its inputs
// are unchanged, and always newer than the shared postgresql build it
// follows), returned too.
func brokenPostgresql(t *testing.T) (apps, build string) {
	t.Helper()
	apps = copyAppliance(t, "postgresql")
	copyInto(t, filepath.Join(repoAppliances(t), "miniflux"), apps)
	a, err := appliance.Load(apps, "postgresql")
	if err != nil {
		t.Fatal(err)
	}
	next, err := semver.Parse(a.Version)
	if err != nil {
		t.Fatal(err)
	}
	next.Patch++
	edit := func(file, old, replacement string) {
		path := filepath.Join(apps, "postgresql", file)
		s := readFile(t, path)
		if !strings.Contains(s, old) {
			t.Fatalf("%s has no %q to break (the appliance changed: update brokenPostgresql)", path, old)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(s, old, replacement, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("appliance.yaml", "version: "+a.Version, "version: "+next.String())
	edit("files/provides-postgresql", `OWNER %I', '$name', '$name')`, `OWNER %I', '$name', '${name}_owner')`)
	build = keptFollowing(t, "broken-hook", "postgresql", sharedBuilds())
	buildIn(t, apps, build, "postgresql", []string{"default"})
	return apps, build
}
