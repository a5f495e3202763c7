package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/incus-appliance/registry/internal/catalog"
)

type removeCmd struct {
	signingFlags `embed:""`

	Image  string `arg:"" name:"FINGERPRINT|ALIAS" help:"Image fingerprint (or a unique prefix of 8+ digits), or an alias: the latest version of each product listing it."`
	Arch   string `help:"Only on this architecture (with an alias)."`
	DryRun bool   `short:"n" help:"Show what would be removed; change nothing."`
}

func (c *removeCmd) Run(ctx context.Context, g *Globals, out *output, log *slog.Logger) error {
	reg, err := openChange(ctx, g, log, c.signingFlags, false)
	if err != nil {
		return err
	}
	defer reg.Close()
	res, err := reg.Remove(ctx, c.Image, c.Arch, c.DryRun)
	if err != nil {
		return fmt.Errorf("remove %s: %w", c.Image, err)
	}
	return reg.finish(ctx, "remove "+c.Image, len(res.Removed) > 0 && !res.DryRun, func() error {
		return out.result(res, func(w io.Writer) { printRemoved(w, res.Removed, res.DryRun, "removed") })
	})
}

func printRemoved(w io.Writer, rs []catalog.Removed, dryRun bool, verb string) {
	if dryRun {
		verb = "would remove"
	}
	for _, r := range rs {
		fmt.Fprintf(w, "%s %s version %s %v\n", verb, r.Product, r.Version, r.Fingerprints)
	}
}
