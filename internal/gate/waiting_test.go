package gate

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
)

func miniflux(t *testing.T) *appliance.Appliance {
	t.Helper()
	a, err := appliance.Load(filepath.Join("..", "..", "appliances"), "miniflux")
	if err != nil {
		t.Fatal(err)
	}
	a.Health = appliance.HealthCheck{Command: []string{"true"}, Timeout: 1}
	return a
}

// A consumer launched alone: its service waits for relation db (a
// condition, not a failure), which the service check accepts and names.
func TestGateAcceptsAConsumerWaitingForItsRelation(t *testing.T) {
	h := newFakeHost()
	h.answers["systemctl show -p Main"] = "pid 0\n"
	h.answers["ConditionResult"] = "no\n"
	rep, err := runConsumer(t, h)
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Checks[5]
	if !rep.Passed || c.Name != CheckService || !strings.Contains(c.Detail, "miniflux.service waits for relation db") {
		t.Errorf("report: %+v", rep)
	}
}

// Not started for another reason (a condition that held, a crash), or an
// appliance that requires nothing: no running process is a failure.
func TestGateRefusesAServiceNotRunning(t *testing.T) {
	for _, tt := range []struct {
		name      string
		condition string
		consumer  bool
	}{
		{"consumer whose condition held", "yes\n", true},
		{"appliance requiring nothing", "no\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost()
			h.answers["systemctl show -p Main"] = "pid 0\n"
			h.answers["ConditionResult"] = tt.condition
			var rep *Report
			if tt.consumer {
				var err error
				if rep, err = runConsumer(t, h); err != nil {
					t.Fatal(err)
				}
			} else {
				rep = runGate(t, h, nginx(t))
			}
			if f := rep.Failed(); rep.Passed || f == nil || f.Name != CheckService || !strings.Contains(f.Detail, "no running main process") {
				t.Errorf("report: %+v", rep)
			}
		})
	}
}

func runConsumer(t *testing.T, h *fakeHost) (*Report, error) {
	t.Helper()
	a := miniflux(t)
	a.Ports = []string{"80/tcp"} // what the fake host listens on
	return Run(context.Background(), Options{Appliance: a, Arch: "amd64", Metadata: "m", Rootfs: "r", Host: h, Poll: time.Millisecond, BootTimeout: 100 * time.Millisecond})
}
