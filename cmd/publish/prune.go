package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/incus-appliance/registry/internal/registry"
)

type pruneCmd struct {
	signingFlags `embed:""`

	Keep   int           `help:"Keep the newest N versions of each product (0: remove no version, only delete unreferenced files)." default:"0"`
	Grace  time.Duration `default:"2h" help:"Never delete a file that left the catalog, or was written, less than this long ago (Incus daemons cache a catalog for 1h; add your CDN's TTL)."`
	DryRun bool          `short:"n" help:"Show what would be removed and deleted; change nothing."`
	Force  bool          `help:"With --keep, drop versions even when one is the last a published appliance's relation allows (says what that breaks)."`
}

func (c *pruneCmd) Run(ctx context.Context, g *Globals, out *output, log *slog.Logger) error {
	if c.Keep < 0 {
		return usageError{fmt.Errorf("--keep must be 0 or more, got %d", c.Keep)}
	}
	if c.Grace < 0 {
		return usageError{fmt.Errorf("--grace must not be negative, got %s", c.Grace)}
	}
	if c.Grace < time.Hour {
		out.warn("--grace %s is shorter than the 1h Incus daemons cache a catalog: clients may fail to download images they still see", c.Grace)
	}
	reg, err := openChange(ctx, g, log, c.signingFlags, false)
	if err != nil {
		return err
	}
	defer reg.Close()
	res, err := reg.Prune(ctx, registry.PruneOptions{Keep: c.Keep, Grace: c.Grace, DryRun: c.DryRun, Force: c.Force})
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	// Only versions leaving the catalog change what clients see; deleted
	// files were unreferenced already.
	return reg.finish(ctx, "prune", len(res.Removed) > 0 && !res.DryRun, func() error { return printPrune(out, res) })
}

func printPrune(out *output, res *registry.PruneResult) error {
	return out.result(res, func(w io.Writer) {
		printRemoved(w, res.Removed, res.DryRun, "removed")
		printBreaks(w, res.Breaks)
		verb := "deleted"
		if res.DryRun {
			verb = "would delete"
		}
		for _, p := range res.Deleted {
			fmt.Fprintf(w, "%s %s\n", verb, p)
		}
		for _, p := range res.Postponed {
			fmt.Fprintf(w, "postponed %s (next prune)\n", p)
		}
		fmt.Fprintf(w, "%d versions removed, %d files %s\n", len(res.Removed), len(res.Deleted), verb)
	})
}
