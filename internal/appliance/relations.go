package appliance

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/incus-appliance/registry/internal/relations"
)

// Relations (internal/relations): an appliance provides named
// interfaces and requires relations to others. Each interface is
// documented once, in appliances/_interfaces/NAME.yaml: the fields a
// provider hands over and what each side does with them. The appliance
// ships one hook per relation (relations.ProvidesHookDir/INTERFACE,
// relations.RequiresHookDir/NAME) through image.yaml's files.

// InterfacesDir is the folder of interface documents inside the
// appliances folder.
const InterfacesDir = "_interfaces"

// Interface is an interface document, appliances/_interfaces/NAME.yaml.
type Interface struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Provider and Consumer say what each side's hook does.
	Provider string `yaml:"provider"`
	Consumer string `yaml:"consumer"`
	// Fields are what the provider's hook prints, in order.
	Fields []InterfaceField `yaml:"fields"`
}

// InterfaceField is one field of an interface's JSON object.
type InterfaceField struct {
	Name string `yaml:"name"`
	// Type is the JSON type: string, integer or list (of strings).
	Type        string `yaml:"type"`
	Description string `yaml:"description"`
}

var (
	fieldNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	fieldTypes  = []string{"string", "integer", "list"}
)

// LoadInterface reads and checks appliances/_interfaces/NAME.yaml in the
// appliances folder root.
func LoadInterface(root, name string) (*Interface, error) {
	path := filepath.Join(root, InterfacesDir, name+".yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		have, _ := InterfaceNames(root)
		return nil, fmt.Errorf("interface %q is not documented: no %s (documented: %s)", name, path, strings.Join(have, ", "))
	}
	var in Interface
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("%s: %v", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var errs []string
	if in.Name != name {
		errs = append(errs, fmt.Sprintf("name: %q differs from the file name %q", in.Name, name))
	}
	for field, text := range map[string]string{"description": in.Description, "provider": in.Provider, "consumer": in.Consumer} {
		if strings.TrimSpace(text) == "" {
			errs = append(errs, field+": missing")
		}
	}
	if len(in.Fields) == 0 {
		errs = append(errs, "fields: missing: the fields the provider's hook prints")
	}
	seen := map[string]bool{}
	for i, f := range in.Fields {
		switch {
		case !fieldNameRe.MatchString(f.Name):
			errs = append(errs, fmt.Sprintf("fields[%d].name: %q must be a lowercase word (a-z, 0-9, _)", i, f.Name))
		case seen[f.Name]:
			errs = append(errs, fmt.Sprintf("fields[%d].name: %s is listed twice", i, f.Name))
		}
		seen[f.Name] = true
		if !slices.Contains(fieldTypes, f.Type) {
			errs = append(errs, fmt.Sprintf("fields[%d].type: %q must be one of %s", i, f.Type, strings.Join(fieldTypes, ", ")))
		}
		if strings.TrimSpace(f.Description) == "" {
			errs = append(errs, fmt.Sprintf("fields[%d].description: missing", i))
		}
	}
	sort.Strings(errs)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %s", path, strings.Join(errs, "; "))
	}
	return &in, nil
}

// InterfaceNames lists the documented interfaces of the appliances folder
// root.
func InterfaceNames(root string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(root, InterfacesDir, "*.yaml"))
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".yaml"))
	}
	sort.Strings(out)
	return out, err
}

// checkRelations validates provides and requires: names, documented
// interfaces, declared ports, version constraints, and each relation's
// hook shipped by image.yaml as an executable script (and no hook for a
// relation not declared).
func (a *Appliance) checkRelations(bad func(field, format string, args ...any)) {
	root := filepath.Dir(a.Dir)
	documented := func(field, iface string) {
		if err := relations.CheckName("interface", iface); err != nil {
			bad(field, "%v", err)
		} else if _, err := LoadInterface(root, iface); err != nil {
			bad(field, "%v", err)
		}
	}
	hooks := map[string]bool{}
	for _, p := range a.Provides {
		documented("provides", p.Interface)
		if hooks[p.Hook()] {
			bad("provides", "interface %s is listed twice", p.Interface)
		}
		hooks[p.Hook()] = true
		if p.Port != 0 && !slices.Contains(a.PortList(), Port{Number: p.Port, Proto: "tcp"}) {
			bad("provides", "%s: port %d is not a declared port (ports: %s)", p.Interface, p.Port, strings.Join(a.Ports, ", "))
		}
	}
	for _, r := range a.Requires {
		if err := relations.CheckName("name", r.Name); err != nil {
			bad("requires", "%v: the hook %s/NAME", err, relations.RequiresHookDir)
			continue
		}
		documented("requires", r.Interface)
		if hooks[r.Hook()] {
			bad("requires", "relation %s is listed twice", r.Name)
		}
		hooks[r.Hook()] = true
		if _, _, err := r.Constraint(); err != nil {
			bad("requires", "%s: %v", r.Name, err)
		}
	}
	a.checkHooks(hooks, bad)
}

// checkHooks checks that image.yaml ships every declared hook as an
// executable script, and no hook of an undeclared relation. An image.yaml
// that cannot be read is left to Template, which names the problem.
func (a *Appliance) checkHooks(declared map[string]bool, bad func(field, format string, args ...any)) {
	overlayPath := filepath.Join(a.Dir, TemplateName)
	ov, err := readOverlay(overlayPath, a.BasePath())
	if err != nil {
		return
	}
	shipped := map[string]bool{}
	for i, f := range ov.Files {
		p, _ := f["path"].(string)
		if !strings.HasPrefix(p, relations.ProvidesHookDir+"/") && !strings.HasPrefix(p, relations.RequiresHookDir+"/") {
			continue
		}
		field := fmt.Sprintf("%s: files[%d]", TemplateName, i)
		shipped[p] = true
		if !declared[p] {
			kind := map[bool]string{true: "provides: interface", false: "requires: name"}[strings.HasPrefix(p, relations.ProvidesHookDir+"/")]
			bad(field, "%s is the hook of a relation appliance.yaml does not declare (%s %s)", p, kind, filepath.Base(p))
			continue
		}
		if err := a.checkHook(f); err != nil {
			bad(field, "%s: %v", p, err)
		}
	}
	names := make([]string, 0, len(declared))
	for h := range declared {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, h := range names {
		if !shipped[h] {
			bad("relations", "the hook %s is missing: list it in %s's files (generator: copy, source: files/..., mode: \"0755\")", h, TemplateName)
		}
	}
}

// checkHook checks one hook's file entry: an executable mode, and a
// script (#!) as content or as the copied source.
func (a *Appliance) checkHook(f map[string]any) error {
	mode, ok := f["mode"].(string)
	m, err := strconv.ParseUint(mode, 8, 32)
	if !ok || err != nil || m&0o100 == 0 {
		return fmt.Errorf("mode %v: give an executable mode as a quoted octal string, mode: \"0755\"", f["mode"])
	}
	var head []byte
	switch gen, _ := f["generator"].(string); gen {
	case "copy":
		src, _ := f["source"].(string)
		data, err := os.ReadFile(filepath.Join(a.Dir, src))
		if err != nil {
			return fmt.Errorf("source %q: not a file of the appliance folder", src)
		}
		head = data
	case "dump":
		content, _ := f["content"].(string)
		head = []byte(content)
	default:
		return fmt.Errorf("generator %q: use copy (or dump) for a hook", gen)
	}
	if !bytes.HasPrefix(head, []byte("#!")) {
		return fmt.Errorf("not a script: it must start with #! (e.g. #!/bin/sh)")
	}
	return nil
}
