package gate

import (
	"fmt"
	"strings"
)

// A consumer appliance launched alone waits for its required relations
// (appliance.yaml requires:, one provider each): its service is held by a
// systemd condition until the relation's hook configures it (miniflux
// without its database). That is a clean state, not a failure: the gate of
// a consumer alone accepts it for the service check, saying so; the
// consumer's health check says what it proves unwired. A gate that wires
// the consumer first finds the service running and checks it as usual.

// waitingForRelations reports whether the declared service was not
// started because its condition failed (systemd ConditionResult=no) while
// the appliance requires a relation, and names those relations.
func (g *run) waitingForRelations(unit string) (string, bool) {
	var names []string
	for _, r := range g.opts.Appliance.Requires {
		if !r.Multiple {
			names = append(names, r.Name)
		}
	}
	if len(names) == 0 {
		return "", false
	}
	out, err := g.exec(g.ctx, fmt.Sprintf("systemctl show -p ConditionResult --value %s", unit))
	if err != nil || strings.TrimSpace(out) != "no" {
		return "", false
	}
	return strings.Join(names, ", "), true
}
