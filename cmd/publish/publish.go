package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/release"
)

type publishCmd struct {
	signingFlags `embed:""`

	Name        string            `arg:"" help:"Appliance name (lowercase letters, digits, '-'); it becomes the image's main alias."`
	Metadata    string            `short:"m" placeholder:"FILE" help:"Metadata tarball (incus.tar.xz) of the split image. Without --metadata/--rootfs, every built architecture of appliances/NAME is published."`
	Rootfs      string            `short:"r" placeholder:"FILE" help:"Root file: rootfs.squashfs, a VM disk (qcow2) or rootfs.tar.xz."`
	Disk        string            `placeholder:"FILE" help:"A bootable VM disk (qcow2, UEFI) published beside --rootfs in the same version: incus launch --vm picks it."`
	Alias       []string          `short:"a" sep:"none" placeholder:"ALIAS" help:"Extra alias (repeatable)."`
	Arch        string            `help:"Expected architecture; publishing fails if metadata.yaml says otherwise."`
	Requirement map[string]string `placeholder:"KEY=VALUE" help:"Image requirement for Incus (repeatable), e.g. secureboot=false."`
	DryRun      bool              `short:"n" help:"Check everything and show what would be uploaded; change nothing."`
	deltaFlags  `embed:""`
}

func (c *publishCmd) Run(ctx context.Context, g *Globals, out *output, log *slog.Logger) error {
	if (c.Metadata == "") != (c.Rootfs == "") {
		return usageError{fmt.Errorf("publish %s: --metadata FILE and --rootfs FILE go together (or give neither to publish the built appliance %s)", c.Name, c.Name)}
	}
	if c.Disk != "" && c.Metadata == "" {
		return usageError{fmt.Errorf("publish %s: --disk goes with --metadata and --rootfs (a built appliance's disk.qcow2 is published by itself)", c.Name)}
	}
	if err := catalog.ValidateName(c.Name); err != nil {
		return usageError{err}
	}
	if err := catalog.ValidateAlias(c.Name); err != nil {
		return usageError{fmt.Errorf("appliance name: %w (the name is the image's main alias)", err)}
	}
	for _, a := range c.Alias {
		if err := catalog.ValidateAlias(a); err != nil {
			return usageError{fmt.Errorf("--alias: %w", err)}
		}
	}
	depth, err := c.depth()
	if err != nil {
		return err
	}
	fromFolder := c.Metadata == ""
	reqs, err := c.requests(ctx, g, out, log)
	if err != nil {
		return err
	}
	reg, err := openChange(ctx, g, log, c.signingFlags, !c.DryRun)
	if err != nil {
		return err
	}
	defer reg.Close()

	results, changed, err := release.Publish(ctx, reg.Registry, c.Name, reqs, release.PublishOptions{
		DryRun: c.DryRun, DeltaDepth: depth, Upload: out.progressFunc("uploading"), Warn: func(s string) { out.warn("%s", s) },
	})
	if err != nil {
		return err
	}
	for _, res := range results {
		log.Info("published", "product", res.Product, "version", res.Version, "retries", res.Retries)
	}
	var v any = results
	if !fromFolder {
		v = results[0] // one image: one result object
	}
	return reg.finish(ctx, "publish "+c.Name, changed, func() error {
		return out.result(v, func(w io.Writer) {
			for _, res := range results {
				printPublish(w, res, g.Bucket.String())
			}
		})
	})
}

// requests inspects what to publish: the two files given, or every built
// architecture of appliance NAME (appliances/NAME, built into --build-dir).
func (c *publishCmd) requests(ctx context.Context, g *Globals, out *output, log *slog.Logger) ([]registry.PublishRequest, error) {
	opts := builder.FileOptions{Aliases: c.Alias, Requirements: c.Requirement, Arch: c.Arch, Progress: out.progressFunc("hashing"), VMDisk: c.Disk}
	if c.Metadata != "" {
		log.Info("inspecting", "metadata", c.Metadata, "rootfs", c.Rootfs)
		req, err := builder.FileRequest(ctx, c.Name, c.Metadata, c.Rootfs, opts)
		if err != nil {
			return nil, err
		}
		log.Info("inspected", "fingerprint", req.Image.Fingerprint, "arch", req.Image.Arch, "kind", req.Image.RootKind)
		return []registry.PublishRequest{req}, nil
	}
	a, err := appliance.Load(g.Appliances, c.Name)
	if err != nil {
		return nil, err
	}
	var arches []string
	if c.Arch != "" {
		if arches, err = parseArches([]string{c.Arch}); err != nil {
			return nil, usageError{err}
		}
	}
	targets, unlisted := builder.Targets(g.BuildDir, a, nil, arches)
	if len(unlisted) > 0 {
		return nil, usageError{fmt.Errorf("publish %s --arch %s: %s does not list it in its architectures (%s)", c.Name, c.Arch, c.Name, appliance.FileName)}
	}
	opts.Arch = ""
	reqs, missing, err := builder.Requests(ctx, a, targets, opts)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		var labels []string
		for _, t := range missing {
			labels = append(labels, t.Label())
		}
		out.warn("%s not built: publishing the rest (run `publish build %s`)", strings.Join(labels, ", "), c.Name)
	}
	return reqs, nil
}

func printPublish(w io.Writer, r *registry.PublishResult, bucket string) {
	verb := "published"
	switch {
	case r.DryRun && r.Changed:
		verb = "would publish"
	case !r.Changed:
		verb = "already published"
	}
	fmt.Fprintf(w, "%s %s version %s (%s) to %s\n", verb, r.Product, r.Version, r.Fingerprint, bucket)
	fmt.Fprintf(w, "  aliases: %s\n", strings.Join(r.Aliases, ", "))
	for _, f := range r.Files {
		state := "already stored"
		if f.Uploaded {
			state = "uploaded"
			if r.DryRun {
				state = "to upload"
			}
		}
		fmt.Fprintf(w, "  %s  %s  %s\n", f.Path, humanBytes(f.Size), state)
	}
	for _, d := range r.Deltas {
		switch {
		case d.Listed:
			fmt.Fprintf(w, "  delta from version %s: %s (%.2f %% of the root)\n", d.Base, humanBytes(d.Size), 100*float64(d.Size)/float64(rootSize(r)))
		case d.Note != "":
			fmt.Fprintf(w, "  delta from version %s: %s\n", d.Base, d.Note)
		}
	}
}

// rootSize is the size of the published root (the second file).
func rootSize(r *registry.PublishResult) int64 {
	if len(r.Files) < 2 || r.Files[1].Size == 0 {
		return 1
	}
	return r.Files[1].Size
}
