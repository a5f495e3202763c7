package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/incus-appliance/registry/internal/location"
	"github.com/incus-appliance/registry/internal/registry"
)

// openRegistry opens the registry at --bucket for reading. A missing
// registry directory is an error, so a mistyped location is not taken
// for an empty registry.
func openRegistry(ctx context.Context, g *Globals) (*registry.Registry, func(), error) {
	return open(ctx, g, false)
}

func open(ctx context.Context, g *Globals, create bool, tweaks ...func(*location.Options)) (*registry.Registry, func(), error) {
	opts := location.Options{Create: create, AWS: g.AWS}
	for _, t := range tweaks {
		t(&opts)
	}
	s, err := location.Open(ctx, g.Bucket, opts)
	if err != nil {
		return nil, nil, err
	}
	reg := registry.New(s)
	reg.AllowUnconditionalStore = g.AllowUnconditionalStore
	reg.Shards = g.CatalogShards
	return reg, func() { _ = s.Close() }, nil
}

// change is a command that changes the catalog: the registry, opened once
// --cloudfront-distribution was checked, and the CDN to tell afterwards.
type change struct {
	*registry.Registry
	g     *Globals
	log   *slog.Logger
	close func()
}

// openChange opens the registry at --bucket for a change, signing with
// sign's key when one is given; with create a new registry directory is
// made (commands that only remove things pass false). --cloudfront-distribution was checked when the command line was
// parsed (Globals.Validate).
func openChange(ctx context.Context, g *Globals, log *slog.Logger, sign signingFlags, create bool, tweaks ...func(*location.Options)) (*change, error) {
	signing, err := sign.signing()
	if err != nil {
		return nil, err
	}
	reg, closeStore, err := open(ctx, g, create, tweaks...)
	if err != nil {
		return nil, err
	}
	reg.Signing = signing
	return &change{Registry: reg, g: g, log: log, close: closeStore}, nil
}

// Close closes the store.
func (c *change) Close() { c.close() }

// finish prints the result and then, if clients can see a change, tells
// the CDN to drop its cached catalog. A failed invalidation is reported
// (as what, with the change committed, still failed) after the result.
func (c *change) finish(ctx context.Context, what string, changed bool, print func() error) error {
	var cdnErr error
	if changed {
		cdnErr = invalidateCatalog(ctx, c.g, c.log)
	}
	if err := print(); err != nil {
		return err
	}
	if cdnErr != nil {
		return fmt.Errorf("%s: %w", what, cdnErr)
	}
	return nil
}
