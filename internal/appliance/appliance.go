// Package appliance is the appliance definition: it reads the appliance
// folders of a repository — appliances/NAME/appliance.yaml (what the
// appliance is), image.yaml (its own packages, files and actions, merged
// into the base template named by base:, see base.go), files/ (what the
// template injects) and profiles/*.yaml (Incus profiles shipped with it)
// — checks them, gives each variant's distrobuilder template and the
// catalog metadata, and writes new ones (New). It neither builds
// (internal/builder) nor publishes.
package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/incus-appliance/registry/internal/osarch"

	"gopkg.in/yaml.v3"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/relations"
	sv "github.com/incus-appliance/registry/internal/semver"
)

// Appliance is appliance.yaml.
type Appliance struct {
	// Name is the appliance's name: the folder name and the image's main
	// alias (`incus launch REMOTE:NAME`).
	Name string `yaml:"name"`
	// Description is one line shown by `incus image list`.
	Description string `yaml:"description"`
	// Version is the appliance's own semantic version (MAJOR.MINOR.PATCH).
	Version string `yaml:"version"`
	// Aliases are extra aliases besides Name.
	Aliases []string `yaml:"aliases"`
	// Architectures it is built for (Incus/Debian names).
	Architectures []string `yaml:"architectures"`
	// Base is the distribution it builds on, as "os/release".
	Base string `yaml:"base"`
	// Profiles are the names of the Incus profiles in profiles/NAME.yaml
	// shipped with it.
	Profiles []string `yaml:"profiles"`
	// Custom is free-form metadata carried into the catalog.
	Custom map[string]string `yaml:"custom"`
	// Ports are the only ports the appliance listens on (e.g. 80/tcp,
	// 53/udp); the release gate refuses a build listening on others.
	Ports []string `yaml:"ports"`
	// Service is the appliance's main systemd service and the non-root
	// user it runs as (checked by the release gate).
	Service *Service `yaml:"service"`
	// Volumes are the paths that hold the appliance's state: a profile can
	// mount a custom volume on each, so that state survives a rebuild.
	Volumes []string `yaml:"volumes"`
	// Requirements are Incus image requirements (requirements.KEY), e.g.
	// nesting: "true"; only the keys Incus knows (requirementValues).
	Requirements map[string]string `yaml:"requirements"`
	// Tags are search words shown by publish list.
	Tags []string `yaml:"tags"`
	// VersionAliases publishes each MAJOR.MINOR line as its own product so
	// that NAME/MAJOR and NAME/MAJOR.MINOR keep naming the newest image of
	// that line (catalog/lines.go); unset means true (Lines), false opts
	// out (one product, NAME:ARCH).
	VersionAliases *bool `yaml:"version_aliases"`
	// Variants are the appliance's variants: default (the template as
	// written) and cloud (with cloud-init); default [default].
	Variants []string `yaml:"variants"`
	// Types are the instance types it is built for: container, and vm
	// (a bootable disk published beside the container image); default
	// [container].
	Types []string `yaml:"types"`
	// Provides are the interfaces it provides, Requires the relations it
	// needs (internal/relations; checked by relations.go).
	Provides []relations.Provide `yaml:"provides"`
	Requires []relations.Require `yaml:"requires"`
	// Health is how tests check a launched container works.
	Health HealthCheck `yaml:"healthcheck"`

	// Dir is the appliance folder (not in the YAML).
	Dir string `yaml:"-"`
}

// HealthCheck is an HTTP request to the container's address, or a command
// run inside it. Exactly one is set.
type HealthCheck struct {
	HTTP *HTTPCheck `yaml:"http"`
	// Command runs inside the container (incus exec); exit 0 is healthy.
	Command []string `yaml:"command"`
	// Timeout in seconds for the check to pass after launch (default 60).
	Timeout int `yaml:"timeout"`
}

// HTTPCheck expects Status from GET http://ADDRESS:Port/Path.
type HTTPCheck struct {
	Port   int    `yaml:"port"`
	Path   string `yaml:"path"`
	Status int    `yaml:"status"`
	// Contains, if set, must appear in the response body.
	Contains string `yaml:"contains"`
}

// FileName is the appliance description's file name.
const FileName = "appliance.yaml"

// Load reads and checks appliances/NAME in root. Every problem found is
// reported, one per line, each naming the file and field.
func Load(root, name string) (*Appliance, error) {
	dir := filepath.Join(root, name)
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if names, _ := Names(root); len(names) > 0 {
			return nil, fmt.Errorf("no appliance %q in %s (there are: %s)", name, root, strings.Join(names, ", "))
		}
		return nil, fmt.Errorf("no appliance %q: %s does not exist (use --appliances DIR to point at the appliances folder)", name, path)
	}
	if err != nil {
		return nil, err
	}
	var a Appliance
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("%s: %v", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	a.Dir = dir
	errs := a.check(name)
	for i, e := range errs {
		errs[i] = fmt.Errorf("%s: %w", path, e)
	}
	if len(errs) == 0 {
		// The base merged with image.yaml: its errors name their file.
		if _, err := a.Template(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &a, nil
}

// Names lists the appliance folders (those with an appliance.yaml) in root.
func Names(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("appliances folder: %w (use --appliances DIR)", err)
	}
	var out []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(root, e.Name(), FileName)); err == nil && e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// check validates every field; folderName is the folder it came from.
func (a *Appliance) check(folderName string) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if a.Name == "" {
		bad("name", "missing: set it to %q", folderName)
	} else if err := catalog.ValidateName(a.Name); err != nil {
		bad("name", "%v", err)
	} else if err := catalog.ValidateAlias(a.Name); err != nil {
		bad("name", "%v (the name is the image's main alias)", err)
	} else if a.Name != folderName {
		bad("name", "%q differs from the folder name %q: rename one", a.Name, folderName)
	}
	if strings.TrimSpace(a.Description) == "" {
		bad("description", "missing: one line saying what the appliance does")
	} else if strings.Contains(a.Description, "\n") || len(a.Description) > 200 {
		bad("description", "must be one line of at most 200 characters")
	}
	if a.Version == "" {
		bad("version", "missing: the appliance's semantic version, e.g. 1.0.0")
	} else if _, err := sv.Parse(a.Version); err != nil {
		bad("version", "%v", err)
	}
	for _, al := range a.Aliases {
		if err := catalog.ValidateAlias(al); err != nil {
			bad("aliases", "%v", err)
		}
	}
	if len(a.Architectures) == 0 {
		bad("architectures", "missing: list at least one, e.g. [amd64]")
	}
	seen := map[string]bool{}
	for _, arch := range a.Architectures {
		n, err := osarch.Normalize(arch)
		if err != nil {
			bad("architectures", "%v", err)
		} else if seen[n] {
			bad("architectures", "%s is listed twice", arch)
		}
		seen[n] = true
	}
	if os, rel, ok := strings.Cut(a.Base, "/"); !ok || os == "" || rel == "" || strings.Contains(rel, "/") {
		bad("base", "%q must be os/release, e.g. debian/trixie (a file in %s/)", a.Base, BasesDir)
	}
	for _, p := range a.Profiles {
		if err := catalog.ValidateName(p); err != nil {
			bad("profiles", "%v", err)
			continue
		}
		data, err := os.ReadFile(filepath.Join(a.Dir, "profiles", p+".yaml"))
		if err != nil {
			bad("profiles", "%s: profiles/%s.yaml does not exist", p, p)
			continue
		}
		var prof struct {
			Description string         `yaml:"description"`
			Config      map[string]any `yaml:"config"`
			Devices     map[string]any `yaml:"devices"`
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&prof); err != nil {
			bad("profiles", "%s: profiles/%s.yaml is not an Incus profile (description, config, devices): %v", p, p, err)
		}
	}
	for k := range a.Custom {
		if k == "" || strings.ContainsAny(k, " \t\n") {
			bad("custom", "key %q: keys are non-empty words", k)
		}
	}
	a.checkRuntime(bad)
	a.checkMetadata(bad)
	a.checkRelations(bad)
	errs = append(errs, a.checkVariantsAndTypes()...)
	errs = append(errs, a.Health.check()...)
	return errs
}

func (h HealthCheck) check() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("healthcheck: "+format, args...))
	}
	switch {
	case h.HTTP == nil && len(h.Command) == 0:
		bad("missing: give http: {port, path, status} or command: [...]")
	case h.HTTP != nil && len(h.Command) > 0:
		bad("give http or command, not both")
	case h.HTTP != nil:
		if h.HTTP.Port < 1 || h.HTTP.Port > 65535 {
			bad("http.port %d is not a TCP port", h.HTTP.Port)
		}
		if !strings.HasPrefix(h.HTTP.Path, "/") {
			bad("http.path %q must start with /", h.HTTP.Path)
		}
		if h.HTTP.Status < 100 || h.HTTP.Status > 599 {
			bad("http.status %d is not an HTTP status", h.HTTP.Status)
		}
	}
	if h.Timeout < 0 || h.Timeout > 3600 {
		bad("timeout %d must be between 0 (default 60) and 3600 seconds", h.Timeout)
	}
	return errs
}

// Arches returns the appliance's architectures in canonical spelling.
func (a *Appliance) Arches() []string {
	var out []string
	for _, arch := range a.Architectures {
		if n, err := osarch.Normalize(arch); err == nil && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// ProfilePath is the file of a bundled profile.
func (a *Appliance) ProfilePath(name string) string {
	return filepath.Join(a.Dir, "profiles", name+".yaml")
}

// Lines reports whether the appliance is published in version lines
// (VersionAliases, true unless set false).
func (a *Appliance) Lines() bool { return a.VersionAliases == nil || *a.VersionAliases }
