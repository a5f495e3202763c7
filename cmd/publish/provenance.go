package main

import (
	"context"

	"github.com/incus-appliance/registry/internal/registry"
)

type provenanceCmd struct {
	imageDocument `embed:""`
}

// Run prints the statement, checked against its catalog digest.
func (c *provenanceCmd) Run(ctx context.Context, g *Globals, out *output) error {
	return c.print(ctx, g, out, (*registry.Registry).Provenance)
}
