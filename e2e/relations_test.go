package e2e

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/relations"
)

// wirePipe wires relation of consumer to provider with the README's pipe
// and the stock client:
//
//	incus exec PROVIDER -- /usr/lib/appliance/provides/INTERFACE CONSUMER |
//	  incus exec CONSUMER -- /usr/lib/appliance/requires/RELATION
//
// and returns what the consumer's hook said.
func wirePipe(t *testing.T, c *client, provider string, p relations.Provide, consumer string, r relations.Require) string {
	t.Helper()
	pipe := "set -o pipefail; " + c.bin + " exec " + provider + " -- " + p.Hook() + " " + consumer + " | " +
		c.bin + " exec " + consumer + " -- " + r.Hook()
	cmd := exec.Command("bash", "-c", pipe)
	cmd.Env = c.env()
	took := stopwatch()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", pipe, err, out)
	}
	t.Logf("%s.%s <- %s (%s): %s in %s", consumer, r.Name, provider, p.Interface, strings.TrimSpace(string(out)), took())
	return strings.TrimSpace(string(out))
}

// bootedClean waits for the instance's boot to finish and checks no unit
// failed; it returns whether the appliance's service is active.
func bootedClean(t *testing.T, c *client, name string, a *appliance.Appliance) bool {
	t.Helper()
	state := ""
	eventually(instanceWait, time.Second, func() bool {
		state = strings.TrimSpace(execIn(t, c, name, "systemctl", "is-system-running"))
		return state == "running" || state == "degraded"
	})
	if state != "running" {
		t.Errorf("%s: systemd %q (failed: %s)", name, state, execIn(t, c, name, "systemctl", "list-units", "--failed", "--plain", "--no-legend"))
	}
	return strings.TrimSpace(execIn(t, c, name, "systemctl", "is-active", a.Service.Unit)) == "active"
}

// waitingForRelation checks a consumer launched alone whose service
// cannot run unwired (miniflux without its database): a clean boot, the
// service held by its condition (not started, not failed), nothing
// listening.
func waitingForRelation(t *testing.T, c *client, name string, a *appliance.Appliance) {
	t.Helper()
	if bootedClean(t, c, name, a) {
		t.Errorf("%s runs %s unwired", name, a.Service.Unit)
	}
	if got := strings.TrimSpace(execIn(t, c, name, "systemctl", "show", "-p", "ActiveState,ConditionResult", a.Service.Unit)); got != "ActiveState=inactive\nConditionResult=no" {
		t.Errorf("%s unwired: %s is %q, want inactive by its condition", name, a.Service.Unit, got)
	}
	if listening := execIn(t, c, name, "ss", "-Hltn"); strings.TrimSpace(listening) != "" {
		t.Errorf("%s unwired listens: %s", name, listening)
	}
}

// providerFor returns the first appliance of names that provides iface
// and requires nothing itself (it can be launched alone to serve a
// consumer).
func providerFor(t *testing.T, root string, names []string, iface string) (string, relations.Provide) {
	t.Helper()
	for _, n := range names {
		a, err := appliance.Load(root, n)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(a.Provides, func(p relations.Provide) bool { return p.Interface == iface })
		if i >= 0 && len(a.Requires) == 0 {
			return n, a.Provides[i]
		}
	}
	t.Fatalf("no appliance providing %s that requires nothing", iface)
	return "", relations.Provide{}
}
