package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/registry"
)

type removeCmd struct {
	signingFlags `embed:""`

	Image  string `arg:"" name:"FINGERPRINT|ALIAS" help:"Image fingerprint (or a unique prefix of 8+ digits), or an alias: the latest version of each product listing it."`
	Arch   string `help:"Only on this architecture (with an alias)."`
	DryRun bool   `short:"n" help:"Show what would be removed; change nothing."`
	Force  bool   `help:"Remove it even when it is the last version a published appliance's relation allows (says what that breaks)."`
}

func (c *removeCmd) Run(ctx context.Context, g *Globals, out *output, log *slog.Logger) error {
	reg, err := openChange(ctx, g, log, c.signingFlags, false)
	if err != nil {
		return err
	}
	defer reg.Close()
	res, err := reg.Remove(ctx, c.Image, registry.RemoveOptions{Arch: c.Arch, DryRun: c.DryRun, Force: c.Force})
	if err != nil {
		return fmt.Errorf("remove %s: %w", c.Image, err)
	}
	return reg.finish(ctx, "remove "+c.Image, len(res.Removed) > 0 && !res.DryRun, func() error {
		return out.result(res, func(w io.Writer) {
			printRemoved(w, res.Removed, res.DryRun, "removed")
			printBreaks(w, res.Breaks)
		})
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

// printBreaks says what a forced change broke.
func printBreaks(w io.Writer, breaks []string) {
	for _, b := range breaks {
		fmt.Fprintf(w, "breaks %s\n", b)
	}
}
