package main

import (
	"context"
	"encoding/json"
	"io"

	"github.com/incus-appliance/registry/internal/registry"
)

type sbomCmd struct {
	imageDocument `embed:""`
}

func (c *sbomCmd) Run(ctx context.Context, g *Globals, out *output) error {
	return c.print(ctx, g, out, (*registry.Registry).SBOM)
}

// imageDocument names a published image whose document (its SBOM, its
// provenance) a command prints.
type imageDocument struct {
	Name string `arg:"" name:"NAME" help:"An alias (the appliance's name), fingerprint or fingerprint prefix."`
	Arch string `placeholder:"ARCH" help:"The architecture, when NAME has images for several."`
}

// print prints the document read returns, as stored (it is JSON already,
// so --json prints the same bytes).
func (d imageDocument) print(ctx context.Context, g *Globals, out *output, read func(*registry.Registry, context.Context, string, string) ([]byte, string, error)) error {
	reg, closeStore, err := openRegistry(ctx, g)
	if err != nil {
		return err
	}
	defer closeStore()
	data, _, err := read(reg, ctx, d.Name, d.Arch)
	if err != nil {
		return err
	}
	return out.result(json.RawMessage(data), func(w io.Writer) { w.Write(data) })
}
