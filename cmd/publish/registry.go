package main

import (
	"context"

	"github.com/incus-appliance/registry/internal/location"
	"github.com/incus-appliance/registry/internal/registry"
)

// openRegistry opens the registry at --bucket. Commands that write pass
// create so that a new registry directory is made; read-only commands do
// not, so a mistyped location is an error rather than an empty registry.
func openRegistry(ctx context.Context, g *Globals, create bool) (*registry.Registry, func(), error) {
	loc, err := location.Parse(g.Bucket)
	if err != nil {
		return nil, nil, usageError{err}
	}
	s, err := location.Open(ctx, loc, location.Options{
		Create: create, EndpointURL: g.EndpointURL, Region: g.Region, Profile: g.Profile,
	})
	if err != nil {
		return nil, nil, err
	}
	reg := registry.New(s)
	reg.AllowUnconditionalStore = g.AllowUnconditionalStore
	return reg, func() { _ = s.Close() }, nil
}
