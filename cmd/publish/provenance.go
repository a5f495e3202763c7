package main

import (
	"context"
	"encoding/json"
	"io"
)

type provenanceCmd struct {
	Name string `arg:"" name:"NAME" help:"An alias (the appliance's name), fingerprint or fingerprint prefix."`
	Arch string `placeholder:"ARCH" help:"The architecture, when NAME has images for several."`
}

// Run prints the statement as stored (it is JSON already, so --json
// prints the same bytes), checked against its catalog digest.
func (c *provenanceCmd) Run(ctx context.Context, g *Globals, out *output) error {
	reg, closeStore, err := openRegistry(ctx, g)
	if err != nil {
		return err
	}
	defer closeStore()
	data, _, err := reg.Provenance(ctx, c.Name, c.Arch)
	if err != nil {
		return err
	}
	return out.result(json.RawMessage(data), func(w io.Writer) { w.Write(data) })
}
