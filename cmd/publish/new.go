package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/incus-appliance/registry/internal/appliance"
)

type newCmd struct {
	Name     string   `arg:"" name:"NAME" help:"The new appliance's name (its folder in --appliances)."`
	Base     string   `default:"debian/trixie" help:"Base template (appliances/_bases/OS-RELEASE.yaml) as os/release."`
	Port     []string `placeholder:"PORT/PROTO" help:"A port it listens on, e.g. 8080/tcp (repeatable)."`
	Package  []string `placeholder:"PKG" help:"A Debian package to install (repeatable)."`
	Arch     []string `placeholder:"ARCH" help:"Architectures (default amd64,arm64)."`
	Provides []string `placeholder:"IFACE" help:"An interface it provides (appliances/_interfaces/IFACE.yaml; repeatable): declared, with a hook stub in files/."`
	Requires []string `placeholder:"NAME=IFACE" help:"A relation it needs, e.g. db=postgresql (repeatable): declared, with a hook stub in files/."`
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
	a, err := appliance.New(g.Appliances, c.Name, appliance.NewOptions{Base: c.Base, Ports: c.Port, Packages: c.Package, Architectures: arches,
		Provides: c.Provides, Requires: c.Requires})
	if err != nil {
		return err
	}
	return out.result(newResult{Name: a.Name, Dir: a.Dir}, func(w io.Writer) {
		what := "appliance.yaml, image.yaml"
		if len(c.Provides)+len(c.Requires) > 0 {
			what += ", the relations' hook stubs in files/"
		}
		fmt.Fprintf(w, "wrote %s (%s): `publish build %s` builds it\n", a.Dir, what, a.Name)
	})
}
