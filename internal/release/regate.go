package release

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/gate"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/relations"
)

// Re-gating. A provider's build that passed its own gate is also gated
// under the published consumers that would pick it (a consumer's gate
// prefers a provider of the run its relation allows: pickProviders):
// each one's published image is launched with this build wired in as
// its provider ("does the new postgresql still serve miniflux?"). A
// consumer that fails makes the provider's gate fail, in a check named
// after the consumer: the provider is not published.

// CheckConsumer names the check of a consumer re-gated with a provider.
func CheckConsumer(name string) string { return "consumer " + name }

// consumersOf returns the published launchable consumers on fb's
// architecture (default variants) with a single relation fb satisfies.
func consumersOf(fb freshBuild, published []relations.Image) []relations.Image {
	var out []relations.Image
	for _, im := range published {
		if !im.Launchable || im.Arch != fb.image.Arch || im.Variant != "" {
			continue
		}
		if slices.ContainsFunc(im.Requires, func(r relations.Require) bool { return !r.Multiple && fb.image.Satisfies(r) }) {
			out = append(out, im)
		}
	}
	return out
}

// regate gates the published consumers of the provider build req of
// item it (appliance a) with it, adding a check per consumer to the
// item's report (its gate fails with the first consumer that fails).
func (p *Pipeline) regate(ctx context.Context, a *appliance.Appliance, it *Item, req registry.PublishRequest) error {
	if len(a.Provides) == 0 || it.Variant != "" {
		return nil
	}
	fb := freshOf(a, it, req)
	published, err := p.Registry.ApplianceImages(ctx)
	if err != nil {
		return err
	}
	for _, c := range consumersOf(fb, published) {
		check, err := p.regateOne(ctx, c, append(slices.Clone(p.fresh), fb), published)
		if err != nil {
			return err
		}
		it.Gate.Checks = append(it.Gate.Checks, check)
		p.note("gate %s: %s %s", it.Label(), map[bool]string{true: "pass", false: "FAIL"}[check.Passed], check.Detail)
		if !check.Passed {
			it.Gate.Passed, it.Outcome = false, GateFailed
			return nil
		}
	}
	return nil
}

// regateOne gates published consumer c with its providers picked from
// fresh first (the provider under release among them).
func (p *Pipeline) regateOne(ctx context.Context, c relations.Image, fresh []freshBuild, published []relations.Image) (gate.Check, error) {
	check := gate.Check{Name: CheckConsumer(c.Appliance)}
	what := fmt.Sprintf("%s %s (published, %s)", c.Appliance, c.Version, c.Fingerprint[:min(12, len(c.Fingerprint))])
	if p.Appliances == nil {
		return check, fmt.Errorf("re-gate %s: no appliances folder to read its definition from", what)
	}
	ca, err := p.Appliances(c.Appliance)
	if err != nil {
		return check, fmt.Errorf("re-gate %s: %w", what, err)
	}
	picks, err := pickProviders(ca, c.Arch, fresh, published)
	if err != nil {
		return check, fmt.Errorf("re-gate %s: %w", what, err)
	}
	dir, err := os.MkdirTemp("", "gate-consumer-")
	if err != nil {
		return check, err
	}
	defer os.RemoveAll(dir)
	var req registry.PublishRequest
	if req.MetadataPath, req.RootPath, err = p.Registry.FetchImage(ctx, c.Fingerprint, dir); err != nil {
		return check, fmt.Errorf("re-gate %s: %w", what, err)
	}
	req.Image.Fingerprint = c.Fingerprint
	var providers []gate.Provider
	for _, pk := range picks {
		gp, err := p.provider(ctx, pk, dir)
		if err != nil {
			return check, fmt.Errorf("re-gate %s: relation %s: %w", what, pk.relation.Name, err)
		}
		providers = append(providers, gp)
	}
	t := builder.Target{Root: dir, Name: c.Appliance, Arch: c.Arch}
	p.note("gate %s: re-gating %s with %s", t.Label(), what, describePicks(providers))
	rep, err := p.Gate.Check(ctx, ca, t, req, providers, func(s string) { p.note("gate %s: %s", t.Label(), s) })
	if err != nil {
		return check, err
	}
	if f := rep.Failed(); f != nil || !rep.Passed {
		detail := "no check ran"
		if f != nil {
			detail = f.Name + ": " + f.Detail
		}
		check.Detail = fmt.Sprintf("%s fails with this build: %s", what, detail)
		return check, nil
	}
	check.Passed, check.Detail = true, fmt.Sprintf("%s passes with this build", what)
	return check, nil
}

// freshOf is the fresh build req of provider a's item it.
func freshOf(a *appliance.Appliance, it *Item, req registry.PublishRequest) freshBuild {
	return freshBuild{a: a, req: req, image: relations.Image{
		Appliance: a.Name, Arch: it.Arch, Version: a.Version, Provides: a.Provides, Requires: a.Requires,
		Fingerprint: req.Image.Fingerprint, Launchable: true,
	}}
}
