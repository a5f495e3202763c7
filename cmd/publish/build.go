package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/osarch"
)

type buildCmd struct {
	Names       []string `arg:"" name:"NAME" help:"Appliances to build."`
	Arch        []string `placeholder:"ARCH" help:"Architectures (comma-separated; default: this machine's). Foreign ones need qemu-user-static and binfmt (see README)."`
	Force       bool     `help:"Rebuild even when nothing changed."`
	Compression string   `default:"xz" help:"Squashfs compression: xz for releases; gzip-1 or zstd-1 build much faster (tests)."`
	CacheDir    string   `placeholder:"DIR" help:"distrobuilder work and download cache, shared by builds (default BUILD-DIR/.cache)."`
	VM          bool     `name:"vm" help:"Also build a bootable VM disk (disk.qcow2, UEFI) beside the container image; the appliance must list vm in its types."`
	Variant     []string `placeholder:"VARIANT" help:"Variants to build (comma-separated; default: every variant appliance.yaml lists): default, cloud (with cloud-init)."`
}

// buildResult is one architecture's build.
type buildResult struct {
	Name     string `json:"name"`
	Variant  string `json:"variant"`
	Arch     string `json:"arch"`
	Skipped  bool   `json:"skipped"`
	Metadata string `json:"metadata"`
	Rootfs   string `json:"rootfs"`
	Disk     string `json:"disk,omitempty"`
	Log      string `json:"log"`
}

func (c *buildCmd) Run(ctx context.Context, g *Globals, out *output) error {
	apps, arches, err := selected(g, c.Names, c.Arch)
	if err != nil {
		return err
	}
	type job struct {
		a       *appliance.Appliance
		targets []builder.Target
	}
	var jobs []job
	for _, a := range apps {
		if c.VM && !a.HasVM() {
			return usageError{fmt.Errorf("build %s --vm: %s does not declare the vm type: add vm to types in %s (types: [container, vm])", a.Name, a.Name, filepath.Join(a.Dir, appliance.FileName))}
		}
		variants, err := c.variants(a)
		if err != nil {
			return err
		}
		targets, unlisted := builder.Targets(g.BuildDir, a, variants, arches)
		for _, arch := range unlisted {
			out.warn("%s does not list %s in its architectures: skipped", a.Name, arch)
		}
		jobs = append(jobs, job{a, targets})
	}
	var results []buildResult
	for _, j := range jobs {
		for _, t := range j.targets {
			res, err := c.build(ctx, j.a, t, out)
			if err != nil {
				return err
			}
			results = append(results, buildResult{Name: t.Name, Variant: t.Variant, Arch: t.Arch, Skipped: res.Skipped, Metadata: res.Metadata, Rootfs: res.Rootfs, Disk: res.Disk, Log: res.Log})
		}
	}
	return out.result(results, func(w io.Writer) {
		for _, r := range results {
			state := "built"
			if r.Skipped {
				state = "up to date"
			}
			fmt.Fprintf(w, "%s/%s/%s %s: %s %s %s\n", r.Name, r.Variant, r.Arch, state, r.Metadata, r.Rootfs, r.Disk)
		}
	})
}

// build builds target t of a: its container image, and with --vm its disk.
func (c *buildCmd) build(ctx context.Context, a *appliance.Appliance, t builder.Target, out *output) (*builder.Result, error) {
	opts := builder.Options{
		Compression: c.Compression, Force: c.Force, CacheDir: c.CacheDir,
		Progress: func(step string) { out.note("build %s: %s", t.Label(), step) },
	}
	res, err := builder.Container(ctx, a, t, opts)
	if err != nil {
		return nil, err
	}
	if res.Skipped {
		out.note("build %s: up to date (inputs unchanged; --force rebuilds)", t.Label())
	}
	if c.VM {
		opts.Progress = func(step string) { out.note("build %s (vm): %s", t.Label(), step) }
		vm, err := builder.VM(ctx, a, t, opts)
		if err != nil {
			return nil, err
		}
		res.Disk = vm.Disk
	}
	return res, nil
}

// variants are the variants to build of a: --variant, or all it lists.
func (c *buildCmd) variants(a *appliance.Appliance) ([]string, error) {
	in := splitList(c.Variant)
	for _, v := range in {
		if !slices.Contains(a.VariantList(), v) {
			return nil, usageError{fmt.Errorf("--variant %s: %s lists only %v in appliance.yaml variants", v, a.Name, a.VariantList())}
		}
	}
	return in, nil
}

// parseArches reads --arch (comma-separated, repeatable; default: this
// machine's) into canonical names, each once.
func parseArches(list []string) ([]string, error) {
	in := splitList(list)
	if len(in) == 0 {
		in = []string{osarch.Host()}
	}
	var out []string
	for _, a := range in {
		n, err := osarch.Normalize(a)
		if err != nil {
			return nil, fmt.Errorf("--arch: %w", err)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// splitList reads a repeatable, comma-separated flag.
func splitList(list []string) []string {
	var out []string
	for _, s := range list {
		out = append(out, strings.Split(s, ",")...)
	}
	return out
}

// selected loads the named appliances (every one in --appliances when
// none is named), providers before their consumers
// (appliance.ProvidersFirst), and reads --arch (see parseArches).
func selected(g *Globals, names, archFlags []string) ([]*appliance.Appliance, []string, error) {
	arches, err := parseArches(archFlags)
	if err != nil {
		return nil, nil, usageError{err}
	}
	if len(names) == 0 {
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
	return appliance.ProvidersFirst(apps), arches, nil
}
