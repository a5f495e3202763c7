package gate

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
)

func shipped(t *testing.T, name string) *appliance.Appliance {
	t.Helper()
	a, err := appliance.Load(filepath.Join("..", "..", "appliances"), name)
	if err != nil {
		t.Fatal(err)
	}
	a.Health.Timeout = 1
	return a
}

// stackGate gates miniflux with a postgresql provider on h.
func stackGate(t *testing.T, h *fakeHost) *Report {
	t.Helper()
	mf, pg := shipped(t, "miniflux"), shipped(t, "postgresql")
	p := Provider{Relation: mf.Requires[0], Provide: pg.Provides[0], Appliance: pg, Label: "postgresql 1.1.0 (released in this run)", Metadata: "pm", Rootfs: "pr"}
	rep, err := Run(context.Background(), Options{Appliance: mf, Arch: "amd64", Metadata: "m", Rootfs: "r", Host: h,
		Poll: time.Millisecond, BootTimeout: 100 * time.Millisecond, Providers: []Provider{p}})
	if err != nil {
		t.Fatal(err)
	}
	if !h.called("delete --force gate-postgresql-") || h.called("launch "+strings.Repeat("ab", 32)+" gate-miniflux-") && !h.called("delete --force gate-miniflux-") {
		t.Errorf("the stack was not cleaned up (%d calls)", len(h.calls))
	}
	return rep
}

// The gate of a consumer launches its provider first, checks it comes
// up, launches the consumer, wires the relation through the hooks (the
// README's pipe), then runs the consumer's checks, its health check
// last of the wiring.
func TestStackGateWiresTheProvidersFirst(t *testing.T) {
	h := newFakeHost()
	rep := stackGate(t, h)
	idx := func(prefix string) int {
		return slices.IndexFunc(h.calls, func(c string) bool { return strings.HasPrefix(c, prefix) })
	}
	launchP, launchC := idx("launch "+strings.Repeat("ab", 32)+" gate-postgresql-"), idx("launch "+strings.Repeat("ab", 32)+" gate-miniflux-")
	pipe := idx("pipe exec gate-postgresql-")
	health := slices.IndexFunc(h.calls, func(c string) bool {
		return strings.HasPrefix(c, "exec gate-miniflux-") && strings.HasSuffix(c, "/usr/lib/appliance/health")
	})
	if launchP < 0 || launchC < launchP || pipe < launchC || health < pipe {
		t.Fatalf("order: provider launch %d, consumer launch %d, pipe %d, consumer health %d:\n%s", launchP, launchC, pipe, health, strings.Join(h.calls, "\n"))
	}
	if c := h.calls[pipe]; !strings.Contains(c, "-- /usr/lib/appliance/provides/postgresql miniflux | exec gate-miniflux-") || !strings.HasSuffix(c, "-- /usr/lib/appliance/requires/db") {
		t.Errorf("the pipe: %s", c)
	}
	i := slices.IndexFunc(rep.Checks, func(c Check) bool { return c.Name == CheckRelation("db") })
	if i < 0 || !rep.Checks[i].Passed || !strings.Contains(rep.Checks[i].Detail, "db (postgresql") || !strings.Contains(rep.Checks[i].Detail, "from postgresql 1.1.0 (released in this run): db: configured") {
		t.Errorf("relation check: %+v", rep.Checks)
	}
}

// A provider whose hook is broken fails the consumer's gate, in a check
// naming the relation.
func TestStackGateFailsOnABrokenHook(t *testing.T) {
	h := newFakeHost()
	h.failing["provides/postgresql miniflux"] = "psql: role creation failed"
	rep := stackGate(t, h)
	f := rep.Failed()
	if rep.Passed || f == nil || f.Name != "relation db" || !strings.Contains(f.Detail, "the hooks failed: psql: role creation failed") {
		t.Errorf("report: %+v", rep)
	}
}

// A provider that does not come up fails the gate before the consumer
// is launched.
func TestStackGateProviderDown(t *testing.T) {
	h := newFakeHost()
	h.failing["exec gate-postgresql-"] = "no such instance"
	rep := stackGate(t, h)
	if f := rep.Failed(); rep.Passed || f == nil || f.Name != "relation db" || !strings.Contains(f.Detail, "provider postgresql 1.1.0 (released in this run) did not come up") {
		t.Errorf("report: %+v", rep)
	}
	if h.called("launch " + strings.Repeat("ab", 32) + " gate-miniflux-") {
		t.Error("the consumer was launched without its provider")
	}
}
