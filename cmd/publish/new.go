package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/incus-appliance/registry/internal/appliance"
)

type newCmd struct {
	Name    string   `arg:"" name:"NAME" help:"The new appliance's name (its folder in --appliances)."`
	Base    string   `default:"debian/trixie" help:"Base template (appliances/_bases/OS-RELEASE.yaml) as os/release."`
	Port    []string `placeholder:"PORT/PROTO" help:"A port it listens on, e.g. 8080/tcp (repeatable)."`
	Package []string `placeholder:"PKG" help:"A Debian package to install (repeatable)."`
	Arch    []string `placeholder:"ARCH" help:"Architectures (default amd64,arm64)."`
}

type newResult struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
}

func (c *newCmd) Run(ctx context.Context, g *Globals, out *output) error {
	var arches []string
	for _, a := range c.Arch {
		arches = append(arches, strings.Split(a, ",")...)
	}
	a, err := appliance.New(g.Appliances, c.Name, appliance.NewOptions{Base: c.Base, Ports: c.Port, Packages: c.Package, Architectures: arches})
	if err != nil {
		return err
	}
	return out.result(newResult{Name: a.Name, Dir: a.Dir}, func(w io.Writer) {
		fmt.Fprintf(w, "wrote %s (appliance.yaml, image.yaml): `publish build %s` builds it\n", a.Dir, a.Name)
	})
}
