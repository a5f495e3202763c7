package gate

import (
	"fmt"
	"strings"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/relations"
)

// The stack gate. A consumer appliance (appliance.yaml requires:) is
// gated with its providers: the gate launches one instance per single
// relation from the provider's image (Options.Providers), waits for its
// boot and health check, launches the consumer, wires each relation
// with the hooks — the README's pipe, `incus exec PROVIDER -- provides
// hook CONSUMER | incus exec CONSUMER -- requires hook` — and only then
// runs the consumer's checks: its health check proves the dependency
// (miniflux answers from its database). Each provider and each wiring is
// a check of its own, named after the relation (CheckRelation).

// CheckRelations is the check of a consumer whose relations could not
// all be given a provider.
const CheckRelations = "relations"

// CheckRelation names a relation's check: "relation db".
func CheckRelation(name string) string { return "relation " + name }

// Provider is an image the gate launches to serve one of the
// appliance's relations.
type Provider struct {
	// Relation is the consumer's relation it serves; Provide the
	// provider's side of it (its hook).
	Relation relations.Require
	Provide  relations.Provide
	// Appliance is the provider appliance (its health check).
	Appliance *appliance.Appliance
	// Label says which image it is: "postgresql 1.1.0 (published)".
	Label string
	// Metadata and Rootfs are its image's files.
	Metadata, Rootfs string
}

// stackInstance is a provider launched for the gate: its instance, and
// its image when the gate imported it.
type stackInstance struct {
	p        Provider
	inst, fp string
	imported bool
}

// launchProviders imports and launches each provider, waits for its
// boot and health check, and adds a failed relation check for one that
// does not come up (the instances launched are returned for wiring and
// cleanup, even then).
func (g *run) launchProviders() (up []stackInstance, ok bool) {
	ok = true
	for _, p := range g.opts.Providers {
		fp, imported, err := importImage(g.ctx, g.h, p.Metadata, p.Rootfs)
		if err != nil {
			g.add(CheckRelation(p.Relation.Name), false, "provider %s: %v", p.Label, err)
			return up, false
		}
		inst := instanceName(p.Appliance.Name)
		up = append(up, stackInstance{p: p, inst: inst, fp: fp, imported: imported})
		g.progress("relation %s: launching %s from %s", p.Relation.Name, inst, p.Label)
		if out, err := g.h.Incus(g.ctx, "launch", fp, inst); err != nil {
			g.add(CheckRelation(p.Relation.Name), false, "provider %s: incus launch: %v %s", p.Label, err, oneLine(out))
			return up, false
		}
		// The provider's own boot and health check, in a run of its own.
		pr := &run{ctx: g.ctx, h: g.h, opts: g.opts, inst: inst, rep: &Report{}}
		pr.opts.Appliance = p.Appliance
		ip := pr.checkDHCP()
		pr.checkBoot()
		pr.checkHealth(ip)
		if f := pr.finish().Failed(); f != nil {
			g.add(CheckRelation(p.Relation.Name), false, "provider %s did not come up: %s: %s", p.Label, f.Name, f.Detail)
			ok = false
		}
	}
	return up, ok
}

// wire runs each relation's pipe into the consumer and adds its check.
func (g *run) wire(up []stackInstance) {
	for _, s := range up {
		name := s.p.Relation.Name
		g.progress("relation %s: wiring %s to %s", name, s.inst, g.inst)
		out, err := g.h.Pipe(g.ctx,
			[]string{"exec", s.inst, "--", s.p.Provide.Hook(), g.opts.Appliance.Name},
			[]string{"exec", g.inst, "--", s.p.Relation.Hook()})
		if err != nil {
			g.add(CheckRelation(name), false, "%s from %s: the hooks failed: %v", s.p.Relation, s.p.Label, err)
			continue
		}
		g.add(CheckRelation(name), true, "%s from %s: %s", s.p.Relation, s.p.Label, oneLine(out))
	}
}

// stackCleanup deletes the providers' instances, and the images the
// gate imported for them.
func stackCleanup(h Host, up []stackInstance) {
	for _, s := range up {
		cleanup(h, "delete", "--force", s.inst)
		if s.imported {
			cleanup(h, "image", "delete", s.fp)
		}
	}
}

// describeRelations lists a provider set for progress lines.
func describeRelations(ps []Provider) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s ← %s", p.Relation.Name, p.Label))
	}
	return strings.Join(out, ", ")
}
