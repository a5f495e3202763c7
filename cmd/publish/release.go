package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/debian"
	"github.com/incus-appliance/registry/internal/release"
)

type releaseCmd struct {
	signingFlags `embed:""`

	Names         []string      `arg:"" optional:"" name:"NAME" help:"Appliances to release (or --all)."`
	All           bool          `help:"Every appliance in --appliances: each one whose inputs changed or whose installed packages have newer versions in the Debian archive is rebuilt, tested and published."`
	Arch          []string      `placeholder:"ARCH" help:"Architectures (comma-separated; default: this machine's). The gate runs a build only on its own architecture."`
	Keep          int           `default:"3" help:"After publishing, prune the registry: keep the newest N versions of each product (0: no prune)."`
	Grace         time.Duration `default:"2h" help:"Prune's grace: never delete a file that left the catalog less than this long ago."`
	SkipGate      bool          `help:"Publish without launching and checking the build (prints a warning naming what was skipped)."`
	DryRun        bool          `short:"n" help:"Say what would be rebuilt and why; build, test and publish nothing."`
	NoUpdateCheck bool          `help:"Do not ask the Debian archive for package updates: rebuild only when the inputs changed."`
	deltaFlags    `embed:""`
	Compression   string `default:"xz" help:"Squashfs compression: xz for releases; gzip-1 builds much faster (tests)."`
	CacheDir      string `placeholder:"DIR" help:"distrobuilder work and download cache (default BUILD-DIR/.cache)."`
}

func (c *releaseCmd) Run(ctx context.Context, g *Globals, out *output, log *slog.Logger) error {
	if c.All == (len(c.Names) > 0) {
		return usageError{errors.New("release: name the appliances to release, or give --all (not both)")}
	}
	if c.Keep < 0 {
		return usageError{fmt.Errorf("--keep must be 0 or more, got %d", c.Keep)}
	}
	depth, err := c.depth()
	if err != nil {
		return err
	}
	apps, arches, err := selected(g, c.Names, c.Arch)
	if err != nil {
		return err
	}
	builds := release.Builds{Options: builder.Options{Compression: c.Compression, CacheDir: c.CacheDir}, Hashing: out.progressFunc("hashing")}
	if !c.NoUpdateCheck {
		builds.Archive = &debian.Archive{}
	}
	ch, err := openChange(ctx, g, log, c.signingFlags, !c.DryRun)
	if err != nil {
		return err
	}
	defer ch.Close()
	if c.SkipGate && !c.DryRun {
		out.loud("--skip-gate: publishing without launching the builds in Incus: health check, failed units, listening ports, service user, sshd/getty and DHCP are NOT checked")
	}
	p := &release.Pipeline{Builder: builds, Gate: release.Incus{}, Registry: ch.Registry, Options: release.Options{
		BuildDir: g.BuildDir, DryRun: c.DryRun, SkipGate: c.SkipGate, DeltaDepth: depth, Keep: c.Keep, Grace: c.Grace,
		Note: func(s string) { out.note("%s", s) }, Warn: out.loud, Upload: out.progressFunc("uploading"),
		Appliances: func(name string) (*appliance.Appliance, error) { return appliance.Load(g.Appliances, name) },
	}}
	res, err := p.Run(ctx, apps, arches)
	if err != nil {
		return err
	}
	err = ch.finish(ctx, "release", res.Changed(), func() error {
		return out.result(res, func(w io.Writer) { printRelease(w, res, g.Bucket.String()) })
	})
	if failed := res.Err(); failed != nil {
		return failed
	}
	return err
}

func printRelease(w io.Writer, res *release.Result, bucket string) {
	for _, it := range res.Items {
		why := ""
		if len(it.Reasons) > 0 {
			why = " (" + strings.Join(it.Reasons, "; ") + ")"
		}
		switch it.Outcome {
		case release.Released:
			gateNote := "gate passed"
			if it.GateSkipped {
				gateNote = "GATE SKIPPED"
			}
			fmt.Fprintf(w, "released %s version %s (%s) to %s, %s%s\n", it.Label(), it.Published.Version, it.Published.Fingerprint[:12], bucket, gateNote, why)
		case release.GateFailed:
			f := it.Gate.Failed()
			fmt.Fprintf(w, "not released %s: gate failed: %s: %s\n", it.Label(), f.Name, f.Detail)
		case release.BuildFailed:
			fmt.Fprintf(w, "not released %s: %s\n", it.Label(), it.Error)
		case release.WouldRebuild:
			fmt.Fprintf(w, "would rebuild %s%s\n", it.Label(), why)
		case release.UpToDate:
			fmt.Fprintf(w, "up to date %s (inputs and package versions unchanged)\n", it.Label())
		default:
			fmt.Fprintf(w, "%s %s%s\n", strings.ReplaceAll(string(it.Outcome), "-", " "), it.Label(), why)
		}
	}
	if p := res.Pruned; p != nil {
		fmt.Fprintf(w, "pruned: %d versions removed, %d files deleted\n", len(p.Removed), len(p.Deleted))
	}
}
