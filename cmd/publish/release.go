package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/osarch"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/debian"
	"github.com/incus-appliance/registry/internal/gate"
	"github.com/incus-appliance/registry/internal/registry"
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
	NoDelta       bool          `help:"Publish without a delta from the previous version (as publish NAME --no-delta)."`
	Compression   string        `default:"xz" help:"Squashfs compression: xz for releases; gzip-1 builds much faster (tests)."`
	CacheDir      string        `placeholder:"DIR" help:"distrobuilder work and download cache (default BUILD-DIR/.cache)."`
}

// releaseItem is what release did with one appliance variant and
// architecture.
type releaseItem struct {
	Name string `json:"name"`
	// Variant is the appliance variant ("" for the default one).
	Variant string   `json:"variant,omitempty"`
	Arch    string   `json:"arch"`
	Outcome string   `json:"outcome"` // released, unchanged, gate-failed, not-released, would-rebuild, up-to-date
	Reasons []string `json:"reasons,omitempty"`
	// Build is what the build step did: built, up to date, or rebuilt
	// with nothing changed.
	Build       string                  `json:"build,omitempty"`
	Gate        *gate.Report            `json:"gate,omitempty"`
	GateSkipped bool                    `json:"gate_skipped,omitempty"`
	Published   *registry.PublishResult `json:"published,omitempty"`

	reqs []registry.PublishRequest
}

// label names the item: NAME/ARCH, or NAME/VARIANT/ARCH.
func (it *releaseItem) label() string {
	return appliance.VariantDir(it.Name, it.Variant) + "/" + it.Arch
}

type releaseResult struct {
	Items  []*releaseItem        `json:"items"`
	Pruned *registry.PruneResult `json:"pruned,omitempty"`
	DryRun bool                  `json:"dry_run"`
}

func (c *releaseCmd) Run(ctx context.Context, g *Globals, out *output, log *slog.Logger) error {
	apps, arches, err := c.appliances(g)
	if err != nil {
		return err
	}
	var archive appliance.Archive
	if !c.NoUpdateCheck {
		archive = &debian.Archive{}
	}
	ch, err := openChange(ctx, g, log, c.signingFlags, !c.DryRun)
	if err != nil {
		return err
	}
	defer ch.Close()
	reg := ch.Registry
	if c.SkipGate && !c.DryRun {
		fmt.Fprintf(out.stderr, "publish: WARNING: --skip-gate: publishing without launching the builds in Incus: health check, failed units, listening ports, service user, sshd/getty and DHCP are NOT checked\n")
	}

	res := &releaseResult{DryRun: c.DryRun}
	var failures []string
	changed := false
	for _, a := range apps {
		var items []*releaseItem
		failed := false
		// Every variant is built, gated and released like the default one.
		for _, variant := range a.VariantList() {
			for _, arch := range arches {
				if !contains(a.Arches(), arch) {
					continue
				}
				it, err := c.prepare(ctx, g, out, log, reg, archive, a, variant, arch)
				if err != nil {
					return err
				}
				res.Items, items = append(res.Items, it), append(items, it)
				if it.Outcome == "gate-failed" {
					failed = true
					f := it.Gate.Failed()
					failures = append(failures, fmt.Sprintf("%s failed the gate: %s: %s", it.label(), f.Name, f.Detail))
				}
			}
		}
		// An appliance goes out whole or not at all.
		for _, it := range items {
			if it.reqs == nil {
				continue
			}
			if failed {
				it.Outcome, it.Reasons = "not-released", append(it.Reasons, "another architecture failed the gate")
				continue
			}
			results, published, err := publishRequests(ctx, reg, a.Name, it.reqs, false, c.NoDelta, out, log)
			if err != nil {
				return err
			}
			it.Outcome, it.Published, changed = "released", results[0], changed || published
		}
	}
	if changed && c.Keep > 0 {
		if res.Pruned, err = reg.Prune(ctx, registry.PruneOptions{Keep: c.Keep, Grace: c.Grace}); err != nil {
			return fmt.Errorf("release: published, then prune failed: %w", err)
		}
	}
	err = ch.finish(ctx, "release", changed, func() error {
		return out.result(res, func(w io.Writer) { printRelease(w, res, g.Bucket.String()) })
	})
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; ") + " (nothing of it published; report: BUILD-DIR/NAME/ARCH/gate.json)")
	}
	return err
}

// appliances loads the named appliances (every one with --all) and the
// architectures to release.
func (c *releaseCmd) appliances(g *Globals) ([]*appliance.Appliance, []string, error) {
	if c.All == (len(c.Names) > 0) {
		return nil, nil, usageError{errors.New("release: name the appliances to release, or give --all (not both)")}
	}
	if c.Keep < 0 {
		return nil, nil, usageError{fmt.Errorf("--keep must be 0 or more, got %d", c.Keep)}
	}
	arches, err := (&buildCmd{Arch: c.Arch}).arches()
	if err != nil {
		return nil, nil, usageError{err}
	}
	names := c.Names
	if c.All {
		if names, err = appliance.Names(g.Appliances); err != nil {
			return nil, nil, err
		}
	}
	var apps []*appliance.Appliance
	for _, n := range names {
		a, err := appliance.Load(g.Appliances, n)
		if err != nil {
			return nil, nil, err
		}
		apps = append(apps, a)
	}
	return apps, arches, nil
}

// prepare decides, builds and gates one architecture of an appliance
// variant; the item carries the publish requests when it is ready to go
// out.
func (c *releaseCmd) prepare(ctx context.Context, g *Globals, out *output, log *slog.Logger, reg *registry.Registry, archive appliance.Archive, a *appliance.Appliance, variant, arch string) (*releaseItem, error) {
	it := &releaseItem{Name: a.Name, Arch: arch}
	if variant != appliance.VariantDefault {
		it.Variant = variant
	}
	what := it.label()
	opts := appliance.BuildOptions{
		OutDir: g.BuildDir, Arch: arch, Compression: c.Compression, CacheDir: c.CacheDir, KeepUnchanged: true, Variant: variant,
		Progress: func(step string) { out.note("build %s: %s", what, step) },
	}
	st, err := appliance.CheckStale(ctx, a, opts, archive)
	if err != nil {
		return nil, err
	}
	it.Reasons = st.Reasons
	if c.DryRun {
		it.Outcome = "up-to-date"
		if st.Rebuild {
			it.Outcome = "would-rebuild"
		}
		return it, nil
	}
	it.Build = "up to date"
	if st.Rebuild {
		opts.Force = st.Force
		b, err := appliance.Build(ctx, a, opts)
		if err != nil {
			return nil, err
		}
		it.Build = "built"
		if b.Unchanged {
			it.Build = "rebuilt, same package versions: kept the previous build"
		}
	}
	reqs, err := (&publishCmd{Name: a.Name, Arch: arch, variant: variant}).requests(ctx, g, out, log)
	if err != nil {
		return nil, err
	}
	dry, _, err := publishRequests(ctx, reg, a.Name, reqs, true, c.NoDelta, out, log)
	if err != nil {
		return nil, err
	}
	if !dry[0].Changed {
		it.Outcome = "unchanged"
		why := "nothing new: inputs and installed package versions unchanged"
		if it.Build == "built" {
			why = "nothing new: the rebuild made the same image" // reproducible builds
		}
		it.Reasons = append(it.Reasons, fmt.Sprintf("%s, %s already published", why, short(dry[0].Fingerprint)))
		return it, nil
	}
	if c.SkipGate {
		it.GateSkipped = true
		fmt.Fprintf(out.stderr, "publish: WARNING: %s: gate skipped (--skip-gate): %s goes out untested\n", what, short(dry[0].Fingerprint))
	} else {
		if arch != osarch.Host() {
			return nil, fmt.Errorf("gate %s: this %s host cannot launch a %s build: release it on a %s host, or pass --skip-gate", what, osarch.Host(), arch, arch)
		}
		out.note("gate %s: launching %s in Incus", what, short(dry[0].Fingerprint))
		rep, err := gate.Run(ctx, gate.Options{
			Appliance: a, Arch: arch, Metadata: reqs[0].MetadataPath, Rootfs: reqs[0].RootPath,
			Progress: func(s string) { out.note("gate %s: %s", what, s) },
		})
		if err != nil {
			return nil, fmt.Errorf("release %s: %w", what, err)
		}
		it.Gate = rep
		if err := rep.Save(appliance.BuildDirOf(g.BuildDir, appliance.VariantDir(a.Name, variant), arch)); err != nil {
			return nil, err
		}
		for _, ch := range rep.Checks {
			mark := "pass"
			if !ch.Passed {
				mark = "FAIL"
			}
			out.note("gate %s: %s %-16s %s", what, mark, ch.Name, ch.Detail)
		}
		if !rep.Passed {
			it.Outcome = "gate-failed"
			return it, nil
		}
	}
	it.reqs = reqs
	return it, nil
}

func printRelease(w io.Writer, res *releaseResult, bucket string) {
	for _, it := range res.Items {
		why := ""
		if len(it.Reasons) > 0 {
			why = " (" + strings.Join(it.Reasons, "; ") + ")"
		}
		switch it.Outcome {
		case "released":
			gateNote := "gate passed"
			if it.GateSkipped {
				gateNote = "GATE SKIPPED"
			}
			fmt.Fprintf(w, "released %s version %s (%s) to %s, %s%s\n", it.label(), it.Published.Version, short(it.Published.Fingerprint), bucket, gateNote, why)
		case "gate-failed":
			f := it.Gate.Failed()
			fmt.Fprintf(w, "not released %s: gate failed: %s: %s\n", it.label(), f.Name, f.Detail)
		case "would-rebuild":
			fmt.Fprintf(w, "would rebuild %s%s\n", it.label(), why)
		case "up-to-date":
			fmt.Fprintf(w, "up to date %s (inputs and package versions unchanged)\n", it.label())
		default:
			fmt.Fprintf(w, "%s %s%s\n", strings.ReplaceAll(it.Outcome, "-", " "), it.label(), why)
		}
	}
	if p := res.Pruned; p != nil {
		fmt.Fprintf(w, "pruned: %d versions removed, %d files deleted\n", len(p.Removed), len(p.Deleted))
	}
}

func short(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return fp
}
