package e2e

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/osarch"
)

// The stack gate with the real daemon: `publish release miniflux
// postgresql` (named consumer first) releases postgresql first, then
// gates miniflux with that fresh postgresql launched, wired through the
// hooks and checked: miniflux's health check answers from the database.
// miniflux alone into a registry without postgresql goes nowhere.
func TestReleaseStackThroughIncusDaemon(t *testing.T) {
	requireRelease(t)
	build := builtCopy(t, "postgresql", "default")
	buildShared(t, "miniflux", "default")
	from := builder.Target{Root: sharedBuilds(), Name: "miniflux", Arch: osarch.Host()}
	to := from
	to.Root = build
	copyInto(t, from.Dir(), filepath.Dir(to.Dir()))
	apps := repoAppliances(t)
	type report struct {
		Items []struct {
			Name, Outcome string
			Gate          struct {
				Passed bool
				Checks []struct {
					Name, Detail string
					Passed       bool
				}
			}
		}
	}
	release := func(reg string, names ...string) (result, report) {
		t.Helper()
		args := append(append(names, "--appliances", apps, "--bucket", reg, "--no-update-check", "--keep", "0", "--json"), buildFlags(build)...)
		r := releaseRun(t, nil, args...)
		var rep report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("release %v: exit %d, %v\n%s\n%s", names, r.code, err, r.stdout, r.stderr)
		}
		return r, rep
	}

	incusDaemon(t)
	// Alone, without a provider anywhere: the gate fails naming the
	// relation, nothing is published.
	empty := filepath.Join(t.TempDir(), "empty")
	r, rep := release(empty, "miniflux")
	if r.code == 0 || len(rep.Items) != 1 || rep.Items[0].Outcome != "gate-failed" || !strings.Contains(r.stderr, "relation db needs postgresql") {
		t.Errorf("miniflux alone: exit %d, %+v\n%s", r.code, rep, r.stderr)
	}

	reg := filepath.Join(t.TempDir(), "registry")
	r, rep = release(reg, "miniflux", "postgresql")
	if r.code != 0 || len(rep.Items) != 2 || rep.Items[0].Name != "postgresql" || rep.Items[1].Name != "miniflux" {
		t.Fatalf("release: exit %d, %+v\n%s", r.code, rep, r.stderr)
	}
	mf := rep.Items[1]
	i := slices.IndexFunc(mf.Gate.Checks, func(c struct {
		Name, Detail string
		Passed       bool
	}) bool {
		return c.Name == "relation db"
	})
	if mf.Outcome != "released" || !mf.Gate.Passed || i < 0 || !strings.Contains(mf.Gate.Checks[i].Detail, "(released in this run): db: configured") {
		t.Errorf("miniflux's gate: %+v", mf)
	}
	if !strings.Contains(r.stderr, "gate miniflux/"+osarch.Host()+": with its providers: db ← postgresql") {
		t.Errorf("the gate did not say which provider it launched:\n%s", r.stderr)
	}
	mustPublish(t, "verify", "--bucket", reg)
}
