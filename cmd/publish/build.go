package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/incus-appliance/registry/internal/osarch"

	"github.com/incus-appliance/registry/internal/appliance"
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
	arches, err := c.arches()
	if err != nil {
		return usageError{err}
	}
	var apps []*appliance.Appliance
	for _, name := range c.Names {
		a, err := appliance.Load(g.Appliances, name)
		if err != nil {
			return err
		}
		if c.VM && !a.HasVM() {
			return usageError{fmt.Errorf("build %s --vm: %s does not declare the vm type: add vm to types in %s (types: [container, vm])", a.Name, a.Name, filepath.Join(a.Dir, appliance.FileName))}
		}
		apps = append(apps, a)
	}
	var results []buildResult
	for _, a := range apps {
		variants, err := c.variants(a)
		if err != nil {
			return err
		}
		for _, variant := range variants {
			for _, arch := range arches {
				if !contains(a.Arches(), arch) {
					out.warn("%s does not list %s in its architectures: skipped", a.Name, arch)
					continue
				}
				what := a.Name + "/" + arch
				if variant != appliance.VariantDefault {
					what = a.Name + "/" + variant + "/" + arch
				}
				res, err := appliance.Build(ctx, a, appliance.BuildOptions{
					OutDir: g.BuildDir, Arch: arch, Compression: c.Compression, Force: c.Force, CacheDir: c.CacheDir, Variant: variant,
					Progress: func(step string) { out.note("build %s: %s", what, step) },
				})
				if err != nil {
					return err
				}
				if res.Skipped {
					out.note("build %s: up to date (inputs unchanged; --force rebuilds)", what)
				}
				if c.VM {
					vm, err := appliance.BuildVM(ctx, a, appliance.BuildOptions{
						OutDir: g.BuildDir, Arch: arch, Force: c.Force, CacheDir: c.CacheDir, Variant: variant,
						Progress: func(step string) { out.note("build %s (vm): %s", what, step) },
					})
					if err != nil {
						return err
					}
					res.Disk = vm.Disk
				}
				results = append(results, buildResult{Name: a.Name, Variant: variant, Arch: arch, Skipped: res.Skipped, Metadata: res.Metadata, Rootfs: res.Rootfs, Disk: res.Disk, Log: filepath.Join(res.Dir, "build.log")})
			}
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

// variants are the variants to build of a: --variant, or all it lists.
func (c *buildCmd) variants(a *appliance.Appliance) ([]string, error) {
	var in []string
	for _, v := range c.Variant {
		in = append(in, strings.Split(v, ",")...)
	}
	if len(in) == 0 {
		return a.VariantList(), nil
	}
	for _, v := range in {
		if !contains(a.VariantList(), v) {
			return nil, usageError{fmt.Errorf("--variant %s: %s lists only %v in appliance.yaml variants", v, a.Name, a.VariantList())}
		}
	}
	return in, nil
}

func (c *buildCmd) arches() ([]string, error) {
	var in []string
	for _, a := range c.Arch {
		in = append(in, strings.Split(a, ",")...)
	}
	if len(in) == 0 {
		in = []string{osarch.Host()}
	}
	var out []string
	for _, a := range in {
		n, err := osarch.Normalize(a)
		if err != nil {
			return nil, fmt.Errorf("--arch: %w", err)
		}
		if !contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
