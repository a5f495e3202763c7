package appliance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/relations"
)

// NewOptions describe the appliance New writes.
type NewOptions struct {
	// Base is "os/release" (default defaultBase).
	Base string
	// Ports the appliance listens on ("8080/tcp").
	Ports []string
	// Packages are Debian packages to install.
	Packages []string
	// Architectures (default amd64, arm64).
	Architectures []string
	// Provides are interfaces it provides; Requires relations it needs,
	// as NAME=INTERFACE (scaffold_relations.go).
	Provides, Requires []string
}

// defaultBase is the base of new appliances.
const defaultBase = "debian/trixie"

// New writes the folder of a new appliance NAME into root: an
// appliance.yaml, an image.yaml installing the packages, and a health
// check that passes once the system is up with every unit started and
// every declared TCP port answering. The folder validates as written
// (Load checks it before New returns); nothing is written when it would
// not, or when the folder exists.
func New(root, name string, o NewOptions) (*Appliance, error) {
	if err := catalog.ValidateName(name); err != nil {
		return nil, fmt.Errorf("NAME: %w", err)
	}
	if o.Base == "" {
		o.Base = defaultBase
	}
	if len(o.Architectures) == 0 {
		o.Architectures = []string{"amd64", "arm64"}
	}
	dir := filepath.Join(root, name)
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("%s already exists: choose another name or remove it", dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var tcp []string
	for _, p := range o.Ports {
		port, err := parsePort(p)
		if err != nil {
			return nil, fmt.Errorf("--port: %w", err)
		}
		if port.Proto == "tcp" {
			tcp = append(tcp, fmt.Sprint(port.Number))
		}
	}
	if len(tcp) > 0 && len(o.Packages) == 0 {
		return nil, fmt.Errorf("--port %s/tcp without --package: nothing in the image would listen on it, so its health check would fail; add the --package that serves it", tcp[0])
	}
	rel, err := scaffoldRelations(root, o.Provides, o.Requires)
	if err != nil {
		return nil, err
	}
	check := "systemctl is-system-running --wait >/dev/null"
	if len(tcp) > 0 {
		check += " && for p in " + strings.Join(tcp, " ") + `; do bash -c "echo >/dev/tcp/127.0.0.1/$p" || exit 1; done`
	}
	desc := name + " appliance"
	if len(o.Packages) > 0 {
		desc += " (" + strings.Join(o.Packages, ", ") + ")"
	}
	type health struct {
		Command []string `yaml:"command"`
		Timeout int      `yaml:"timeout"`
	}
	doc := struct {
		Name          string            `yaml:"name"`
		Description   string            `yaml:"description"`
		Version       string            `yaml:"version"`
		Architectures []string          `yaml:"architectures,flow"`
		Base          string            `yaml:"base"`
		Ports         []string          `yaml:"ports,flow,omitempty"`
		Provides      []scaffoldProvide `yaml:"provides,omitempty"`
		Requires      []scaffoldRequire `yaml:"requires,omitempty"`
		Health        health            `yaml:"healthcheck"`
	}{name, desc, "0.1.0", o.Architectures, o.Base, o.Ports, scaffoldProvides(rel.provides, tcp), scaffoldRequires(rel.requires), health{[]string{"sh", "-c", check}, 120}}
	var a text
	a.line("# yaml-language-server: $schema=../appliance.schema.json")
	a.line("# Written by `publish new`. The health check proves the system is up")
	a.line("# (every unit started) and the declared TCP ports answer: replace it")
	a.line("# with one that proves the service works (see appliances/nginx).")
	if err := a.yaml(doc); err != nil {
		return nil, err
	}
	var img text
	img.line("# " + name + "'s own part of the image; the Debian plumbing is the base's")
	img.line("# (appliances/_bases/). Add files: and actions: as distrobuilder takes them.")
	if err := img.yaml(struct {
		Packages []string            `yaml:"packages,flow"`
		Files    []map[string]string `yaml:"files,omitempty"`
	}{append([]string{}, o.Packages...), rel.entries}); err != nil {
		return nil, err
	}

	// Write into a temporary folder and move it in place; a folder that
	// does not load is removed again.
	tmp, err := os.MkdirTemp(root, "."+name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, FileName), []byte(a.b.String()), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, TemplateName), []byte(img.b.String()), 0o644); err != nil {
		return nil, err
	}
	if err := rel.write(tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	app, err := Load(root, name)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return app, nil
}

// text is a file being written.
type text struct{ b strings.Builder }

func (w *text) line(s string) { w.b.WriteString(s + "\n") }

func (w *text) yaml(v any) error {
	enc := yaml.NewEncoder(&w.b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return enc.Close()
}

// scaffoldRequire is a relation as publish new writes it: name and
// interface (a constraint is the author's to add).
type scaffoldRequire struct {
	Name      string `yaml:"name"`
	Interface string `yaml:"interface"`
}

func scaffoldRequires(rs []relations.Require) []scaffoldRequire {
	out := make([]scaffoldRequire, len(rs))
	for i, r := range rs {
		out[i] = scaffoldRequire{r.Name, r.Interface}
	}
	return out
}

// scaffoldProvide is a provided interface as publish new writes it: on
// the one declared TCP port, when there is exactly one.
type scaffoldProvide struct {
	Interface string `yaml:"interface"`
	Port      int    `yaml:"port,omitempty"`
}

func scaffoldProvides(ps []relations.Provide, tcp []string) []scaffoldProvide {
	out := make([]scaffoldProvide, len(ps))
	for i, p := range ps {
		out[i].Interface = p.Interface
		if len(tcp) == 1 {
			out[i].Port, _ = strconv.Atoi(tcp[0])
		}
	}
	return out
}
