package main

import (
	"context"
	"encoding/json"
	"io"

	"github.com/incus-appliance/registry/internal/registry"
)

type sbomCmd struct {
	Name string `arg:"" name:"NAME" help:"An alias (the appliance's name), fingerprint or fingerprint prefix."`
	Arch string `placeholder:"ARCH" help:"The architecture, when NAME has images for several."`
}

func (c *sbomCmd) Run(ctx context.Context, g *Globals, out *output) error {
	reg, closeStore, err := openRegistry(ctx, g)
	if err != nil {
		return err
	}
	defer closeStore()
	return printSBOM(ctx, reg, c.Name, c.Arch, out)
}

// printSBOM prints the SPDX document as stored (it is JSON already, so
// --json prints the same bytes).
func printSBOM(ctx context.Context, reg *registry.Registry, name, arch string, out *output) error {
	data, _, err := reg.SBOM(ctx, name, arch)
	if err != nil {
		return err
	}
	return out.result(json.RawMessage(data), func(w io.Writer) { w.Write(data) })
}
