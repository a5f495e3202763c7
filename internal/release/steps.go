package release

import (
	"context"
	"errors"
	"fmt"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/gate"
	"github.com/incus-appliance/registry/internal/provenance"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/relations"
)

// prepare takes one target through the steps before publishing: is a
// build due (a dry run stops there), the build, is it new to the
// registry, the gate. The item is ready when it may go out with the rest
// of its appliance.
func (p *Pipeline) prepare(ctx context.Context, a *appliance.Appliance, t builder.Target) (*Item, error) {
	it := newItem(t)
	st, err := p.Builder.Stale(ctx, a, t)
	if err != nil {
		return nil, err
	}
	it.Reasons = st.Reasons
	if p.DryRun {
		it.Outcome = UpToDate
		if st.Rebuild {
			it.Outcome = WouldRebuild
		}
		return it, nil
	}
	if err := p.build(ctx, a, it, st); err != nil || it.Outcome == BuildFailed {
		return it, err
	}
	req, err := p.Builder.Request(ctx, a, t)
	if err != nil {
		return nil, err
	}
	dry, _, err := Publish(ctx, p.Registry, a.Name, []registry.PublishRequest{req}, p.publishOptions(true))
	var unmet *relations.UnmetError
	if errors.As(err, &unmet) {
		// The registry refuses it: a relation nothing published
		// satisfies. Its gate fails, naming it; the release goes on.
		p.failRelations(a, it, req, unmet)
		return it, nil
	}
	if err != nil {
		return nil, err
	}
	fingerprint := dry[0].Fingerprint[:min(12, len(dry[0].Fingerprint))]
	if !dry[0].Changed {
		why := "nothing new: inputs and installed package versions unchanged"
		if it.Build == "built" {
			why = "nothing new: the rebuild made the same image" // reproducible builds
		}
		it.Outcome, it.Reasons = Unchanged, append(it.Reasons, fmt.Sprintf("%s, %s already published", why, fingerprint))
		return it, nil
	}
	if err := p.gate(ctx, a, it, req, fingerprint); err != nil || it.Outcome == GateFailed {
		return it, err
	}
	if req.Provenance, err = withGateReport(req.Provenance, it.Gate); err != nil {
		return nil, err
	}
	it.ready = &req
	return it, nil
}

// withGateReport is the build's provenance facts with the gate's report
// as a byproduct (unchanged without facts or without a report: a skipped
// gate).
func withGateReport(facts *provenance.Inputs, rep *gate.Report) (*provenance.Inputs, error) {
	if facts == nil || rep == nil {
		return facts, nil
	}
	out := *facts
	var err error
	out.GateReport, err = rep.Marshal()
	return &out, err
}

// build builds the item's target when st says it is due. A build that
// fails makes the item build-failed (unless the release was cancelled).
func (p *Pipeline) build(ctx context.Context, a *appliance.Appliance, it *Item, st *builder.Staleness) error {
	it.Build = "up to date"
	if !st.Rebuild {
		return nil
	}
	label := it.Label()
	b, err := p.Builder.Build(ctx, a, it.target, st.Force, func(step string) { p.note("build %s: %s", label, step) })
	switch {
	case err != nil && ctx.Err() != nil:
		return err
	case err != nil:
		it.Outcome, it.Error = BuildFailed, err.Error()
	case b.Unchanged:
		it.Build = "rebuilt, same package versions: kept the previous build"
	default:
		it.Build = "built"
	}
	return nil
}

// gate launches the item's build and checks it, or with SkipGate says
// loudly that it goes out untested. A build that fails a check makes the
// item gate-failed; an error means the gate could not run.
func (p *Pipeline) gate(ctx context.Context, a *appliance.Appliance, it *Item, req registry.PublishRequest, fingerprint string) error {
	label := it.Label()
	if p.SkipGate {
		it.GateSkipped = true
		p.warn("%s: gate skipped (--skip-gate): %s goes out untested", label, fingerprint)
		return nil
	}
	providers, done, err := p.stackFor(ctx, a, it.target)
	defer done()
	var none *noProviderError
	if errors.As(err, &none) {
		p.failRelations(a, it, req, none)
		return nil
	}
	if err != nil {
		return err
	}
	if len(providers) > 0 {
		p.note("gate %s: with its providers: %s", label, describePicks(providers))
	}
	p.note("gate %s: launching %s in Incus", label, fingerprint)
	rep, err := p.Gate.Check(ctx, a, it.target, req, providers, func(s string) { p.note("gate %s: %s", label, s) })
	if err != nil {
		return err
	}
	it.Gate = rep
	for _, ch := range rep.Checks {
		mark := "pass"
		if !ch.Passed {
			mark = "FAIL"
		}
		p.note("gate %s: %s %-16s %s", label, mark, ch.Name, ch.Detail)
	}
	if !rep.Passed {
		it.Outcome = GateFailed
		return nil
	}
	return p.regate(ctx, a, it, req)
}

// failRelations fails the item's gate on its relations: err says which
// one nothing satisfies.
func (p *Pipeline) failRelations(a *appliance.Appliance, it *Item, req registry.PublishRequest, err error) {
	it.Gate = &gate.Report{Appliance: a.Name, Arch: it.Arch, Image: req.Image.Fingerprint,
		Checks: []gate.Check{{Name: gate.CheckRelations, Detail: err.Error()}}}
	it.Outcome = GateFailed
	p.note("gate %s: FAIL %s %s", it.Label(), gate.CheckRelations, err)
}
