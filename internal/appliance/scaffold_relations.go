package appliance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/incus-appliance/registry/internal/relations"
)

// The relations publish new scaffolds (--provides IFACE, --requires
// NAME=IFACE): declared in appliance.yaml, each with a hook stub in
// files/ that image.yaml ships, commented with the interface's
// documented fields, so that a new appliance starts out wired: the
// provider's stub prints the fields (placeholder values the author
// replaces), the consumer's records what it receives and says
// configured or unchanged.

// scaffolded are the relations of a new appliance and their hook files
// (path in the folder → content).
type scaffolded struct {
	provides []relations.Provide
	requires []relations.Require
	files    map[string]string
	entries  []map[string]string // image.yaml's files:
}

// scaffoldRelations reads --provides and --requires against the
// interface documents of root.
func scaffoldRelations(root string, provides, requires []string) (*scaffolded, error) {
	s := &scaffolded{files: map[string]string{}}
	for _, iface := range provides {
		doc, err := LoadInterface(root, iface)
		if err != nil {
			return nil, fmt.Errorf("--provides %s: %w", iface, err)
		}
		p := relations.Provide{Interface: iface}
		s.provides = append(s.provides, p)
		s.add(p.Hook(), "files/provides-"+iface, providerStub(doc))
	}
	for _, spec := range requires {
		name, iface, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("--requires %q: give NAME=INTERFACE (e.g. db=postgresql)", spec)
		}
		if err := relations.CheckName("relation name", name); err != nil {
			return nil, fmt.Errorf("--requires %s: %w", spec, err)
		}
		doc, err := LoadInterface(root, iface)
		if err != nil {
			return nil, fmt.Errorf("--requires %s: %w", spec, err)
		}
		r := relations.Require{Name: name, Interface: iface}
		s.requires = append(s.requires, r)
		s.add(r.Hook(), "files/requires-"+name, consumerStub(doc, r))
	}
	return s, nil
}

func (s *scaffolded) add(hook, source, content string) {
	s.files[source] = content
	s.entries = append(s.entries, map[string]string{"path": hook, "generator": "copy", "source": source, "mode": "0755"})
}

// write puts the hook files into the appliance folder dir.
func (s *scaffolded) write(dir string) error {
	for name, content := range s.files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// fieldComments documents an interface's fields as shell comments.
func fieldComments(doc *Interface) string {
	var b strings.Builder
	for _, f := range doc.Fields {
		fmt.Fprintf(&b, "#   %s (%s): %s\n", f.Name, f.Type, f.Description)
	}
	return b.String()
}

// comment writes text as shell comment lines.
func comment(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
	return b.String()
}

// providerStub prints the interface's fields with placeholder values.
func providerStub(doc *Interface) string {
	var fields []string
	for _, f := range doc.Fields {
		v := `""`
		switch f.Type {
		case "integer":
			v = "0"
		case "list":
			v = "[]"
		}
		if f.Name == "host" {
			v = `"'"$host"'"`
		}
		fields = append(fields, fmt.Sprintf(`"%s": %s`, f.Name, v))
	}
	return "#!/bin/sh\n" +
		fmt.Sprintf("# %s CONSUMER: the %s interface (appliances/%s/%s.yaml).\n", relations.Provide{Interface: doc.Name}.Hook(), doc.Name, InterfacesDir, doc.Name) +
		"# Written by `publish new`: replace the placeholder values with what this\n" +
		"# appliance hands CONSUMER. What the provider must do:\n" +
		comment(doc.Provider) +
		"# The fields, printed as one JSON object on one line:\n" +
		fieldComments(doc) +
		"set -eu\n" +
		"consumer=${1:?usage: $0 CONSUMER}\n" +
		"host=$(ip -4 -o addr show dev eth0 | awk '{sub(\"/.*\", \"\", $4); print $4; exit}')\n" +
		"printf '%s\\n' '{" + strings.Join(fields, ", ") + "}'\n"
}

// consumerStub records the fields received and says configured or
// unchanged; the author adds the configuration of the service.
func consumerStub(doc *Interface, r relations.Require) string {
	return "#!/bin/sh\n" +
		fmt.Sprintf("# %s: relation %s, the %s interface (appliances/%s/%s.yaml).\n", r.Hook(), r.Name, doc.Name, InterfacesDir, doc.Name) +
		"# Written by `publish new`: it records what it receives; add the\n" +
		"# configuration of the service where marked. What the consumer must do:\n" +
		comment(doc.Consumer) +
		"# The fields it receives on stdin, one JSON object:\n" +
		fieldComments(doc) +
		"set -eu\n" +
		"state=" + r.State() + "\n" +
		"in=$(cat)\n" +
		"case \"$in\" in\n" +
		"\\{*\\}) ;;\n" +
		"*) echo \"$0: stdin is not a JSON object\" >&2; exit 2 ;;\n" +
		"esac\n" +
		"if [ -f \"$state\" ] && [ \"$(cat \"$state\")\" = \"$in\" ]; then\n" +
		"\techo \"" + r.Name + ": unchanged\"\n" +
		"\texit 0\n" +
		"fi\n" +
		"# Configure the service from \"$in\" here, restart it and wait until it\n" +
		"# works through the relation.\n" +
		"mkdir -p \"$(dirname \"$state\")\"\n" +
		"umask 077\n" +
		"printf '%s\\n' \"$in\" > \"$state.new\"\n" +
		"mv \"$state.new\" \"$state\"\n" +
		"echo \"" + r.Name + ": configured\"\n"
}
