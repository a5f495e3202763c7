package release

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/gate"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/relations"
)

// The stack gate of a release. A consumer appliance is gated with a
// provider for each of its single relations (gate.Provider): a build of
// a provider released earlier in the same run (the appliances go
// providers first: appliance.ProvidersFirst) that the relation allows,
// else the newest published image that does (relations.Providers).

// freshBuild is a provider's build released in this run.
type freshBuild struct {
	image relations.Image
	a     *appliance.Appliance
	req   registry.PublishRequest
}

// pick is the provider chosen for one relation.
type pick struct {
	relation relations.Require
	image    relations.Image
	fresh    *freshBuild // nil: a published image
}

// pickProviders chooses the provider of each single relation of a on
// arch: the fresh builds first, then the published images; the default
// variant of an appliance only. An error names the relation nothing
// satisfies.
func pickProviders(a *appliance.Appliance, arch string, fresh []freshBuild, published []relations.Image) ([]pick, error) {
	var out []pick
	for _, r := range a.Requires {
		if r.Multiple {
			continue
		}
		var images []relations.Image
		for _, f := range fresh {
			images = append(images, f.image)
		}
		if ps := relations.Providers(defaultVariants(images), r, arch); len(ps) > 0 {
			i := slices.IndexFunc(fresh, func(f freshBuild) bool { return f.image.Fingerprint == ps[0].Fingerprint })
			out = append(out, pick{relation: r, image: ps[0], fresh: &fresh[i]})
			continue
		}
		if ps := relations.Providers(defaultVariants(published), r, arch); len(ps) > 0 {
			out = append(out, pick{relation: r, image: ps[0]})
			continue
		}
		return nil, fmt.Errorf("relation %s needs %s: no provider on %s, published or released in this run", r.Name, r.Wants(), arch)
	}
	return out, nil
}

func defaultVariants(images []relations.Image) []relations.Image {
	return slices.DeleteFunc(slices.Clone(images), func(im relations.Image) bool { return im.Variant != "" })
}

// label says which image a pick is: "postgresql 1.1.0 (released in
// this run)", "postgresql 1.1.0 (published, 1a2b3c4d5e6f)".
func (pk pick) label() string {
	if pk.fresh != nil {
		return fmt.Sprintf("%s %s (released in this run)", pk.image.Appliance, pk.image.Version)
	}
	return fmt.Sprintf("%s %s (published, %s)", pk.image.Appliance, pk.image.Version, pk.image.Fingerprint[:min(12, len(pk.image.Fingerprint))])
}

// stackFor returns the providers the gate of a's target t launches (none
// for an appliance without single relations), their published images
// fetched into a folder that done removes. A relation nothing satisfies
// is a noProviderError.
func (p *Pipeline) stackFor(ctx context.Context, a *appliance.Appliance, t builder.Target) (providers []gate.Provider, done func(), err error) {
	done = func() {}
	if !slices.ContainsFunc(a.Requires, func(r relations.Require) bool { return !r.Multiple }) {
		return nil, done, nil
	}
	published, err := p.Registry.ApplianceImages(ctx)
	if err != nil {
		return nil, done, err
	}
	picks, err := pickProviders(a, t.Arch, p.fresh, published)
	if err != nil {
		return nil, done, &noProviderError{err}
	}
	dir, err := os.MkdirTemp("", "gate-providers-")
	if err != nil {
		return nil, done, err
	}
	done = func() { os.RemoveAll(dir) }
	for _, pk := range picks {
		gp, err := p.provider(ctx, pk, dir)
		if err != nil {
			return nil, done, fmt.Errorf("gate %s: relation %s: %w", t.Label(), pk.relation.Name, err)
		}
		providers = append(providers, gp)
	}
	return providers, done, nil
}

// provider makes a pick a gate.Provider: its appliance's definition and
// its image's files (a published one fetched into dir).
func (p *Pipeline) provider(ctx context.Context, pk pick, dir string) (gate.Provider, error) {
	gp := gate.Provider{Relation: pk.relation, Label: pk.label()}
	if pk.fresh != nil {
		gp.Appliance, gp.Metadata, gp.Rootfs = pk.fresh.a, pk.fresh.req.MetadataPath, pk.fresh.req.RootPath
	} else {
		if p.Appliances == nil {
			return gp, fmt.Errorf("%s: no appliances folder to read its definition from", pk.label())
		}
		a, err := p.Appliances(pk.image.Appliance)
		if err != nil {
			return gp, err
		}
		sub, err := os.MkdirTemp(dir, pk.image.Appliance+"-")
		if err != nil {
			return gp, err
		}
		gp.Appliance = a
		if gp.Metadata, gp.Rootfs, err = p.Registry.FetchImage(ctx, pk.image.Fingerprint, sub); err != nil {
			return gp, err
		}
	}
	i := slices.IndexFunc(gp.Appliance.Provides, func(pr relations.Provide) bool { return pr.Interface == pk.relation.Interface })
	if i < 0 {
		return gp, fmt.Errorf("%s: its appliance folder no longer provides %s", pk.label(), pk.relation.Interface)
	}
	gp.Provide = gp.Appliance.Provides[i]
	return gp, nil
}

// noProviderError is a consumer whose relation nothing satisfies: its
// gate fails (the registry would refuse it anyway).
type noProviderError struct{ err error }

func (e *noProviderError) Error() string { return e.err.Error() }

// released records a provider's target released in this run, for the
// consumers gated after it.
func (p *Pipeline) released(a *appliance.Appliance, it *Item) {
	if len(a.Provides) == 0 || it.ready == nil || it.Variant != "" {
		return
	}
	p.fresh = append(p.fresh, freshOf(a, it, *it.ready))
}

// describePicks lists providers for a note.
func describePicks(ps []gate.Provider) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Relation.Name+" ← "+p.Label)
	}
	return strings.Join(out, ", ")
}
