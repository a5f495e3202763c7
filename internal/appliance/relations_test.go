package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/relations"
)

// relationsYAML is validYAML providing http and requiring a database and
// any number of scrape targets.
const relationsYAML = validYAML + `provides:
- interface: http
  port: 80
requires:
- name: db
  interface: postgresql
  version: ">=1.1, <2"
- name: targets
  interface: prometheus-scrape
  multiple: true
`

const relationsImage = `packages: [nginx-light]
files:
- path: /usr/lib/appliance/provides/http
  generator: copy
  source: files/provides-http
  mode: "0755"
- path: /usr/lib/appliance/requires/db
  generator: copy
  source: files/requires-db
  mode: "0755"
- path: /usr/lib/appliance/requires/targets
  generator: dump
  content: |
    #!/bin/sh
    cat >/dev/null
  mode: "0750"
`

// writeRelations makes root/web (writeAppliance) with the shipped
// interface documents, the hooks' sources and image.yaml.
func writeRelations(t *testing.T, yml, image string) string {
	t.Helper()
	root := writeAppliance(t, yml)
	shipped, err := filepath.Glob("../../appliances/" + InterfacesDir + "/*.yaml")
	if err != nil || len(shipped) == 0 {
		t.Fatalf("no shipped interfaces: %v", err)
	}
	os.MkdirAll(filepath.Join(root, InterfacesDir), 0o755)
	for _, f := range shipped {
		data, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(root, InterfacesDir, filepath.Base(f)), data, 0o644)
	}
	dir := filepath.Join(root, "web")
	os.MkdirAll(filepath.Join(dir, "files"), 0o755)
	for _, f := range []string{"provides-http", "requires-db"} {
		os.WriteFile(filepath.Join(dir, "files", f), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	}
	os.WriteFile(filepath.Join(dir, TemplateName), []byte(image), 0o644)
	return root
}

func TestRelationsLoad(t *testing.T) {
	a, err := Load(writeRelations(t, relationsYAML, relationsImage), "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Provides) != 1 || a.Provides[0].Hook() != "/usr/lib/appliance/provides/http" || a.Provides[0].Port != 80 {
		t.Errorf("provides %+v", a.Provides)
	}
	if len(a.Requires) != 2 || a.Requires[0].Hook() != "/usr/lib/appliance/requires/db" || !a.Requires[1].Multiple {
		t.Errorf("requires %+v", a.Requires)
	}
	c, ok, err := a.Requires[0].Constraint()
	if !ok || err != nil || c.String() != ">=1.1, <2" {
		t.Errorf("db's constraint: %v %v %v", c, ok, err)
	}
	if _, ok, err := a.Requires[1].Constraint(); ok || err != nil {
		t.Errorf("targets has no constraint: %v %v", ok, err)
	}
	// The catalog's custom metadata (and the image's properties) carry
	// them, as relations encodes them.
	md := a.CatalogMetadata()
	if md["provides"] != "http:80" || md["requires"] != "db=postgresql >=1.1, <2; targets=prometheus-scrape (multiple)" {
		t.Errorf("CatalogMetadata = %v", md)
	}
	// Set from their own fields only.
	yml := strings.Replace(relationsYAML, "custom:\n", "custom:\n  requires: db\n", 1)
	if _, err := Load(writeRelations(t, yml, relationsImage), "web"); err == nil || !strings.Contains(err.Error(), "custom: requires: is set from its own field") {
		t.Errorf("custom requires: %v", err)
	}
}

// The schema and publish validate agree on relations: the valid file
// passes both, each wrong one fails both.
func TestSchemaAgreesOnRelations(t *testing.T) {
	s := compileSchema(t)
	if err := schemaCheck(t, s, relationsYAML); err != nil {
		t.Fatalf("the schema refuses the valid relations: %v", err)
	}
	for _, tt := range []struct{ name, from, to string }{
		{"interface not a name", "interface: http", "interface: HTTP"},
		{"provides without interface", "- interface: http\n  port: 80", "- port: 80"},
		{"provides port out of range", "port: 80\nrequires", "port: 70000\nrequires"},
		{"provides unknown key", "port: 80\nrequires", "port: 80\n  protocol: tcp\nrequires"},
		{"requires without name", "- name: db\n", "- "},
		{"requires name not a name", "name: db", "name: Db"},
		{"requires without interface", "  interface: postgresql\n", ""},
		{"version not a constraint", `">=1.1, <2"`, `"~1.1"`},
		{"version without operator", `">=1.1, <2"`, `"1.1"`},
		{"version with four numbers", `">=1.1, <2"`, `">=1.1.0.0"`},
		{"version a pre-release", `">=1.1, <2"`, `">=1.1.0-rc.1"`},
		{"multiple not a boolean", "multiple: true", "multiple: many"},
		{"requires unknown key", "multiple: true", "multiple: true\n  optional: true"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			yml := strings.Replace(relationsYAML, tt.from, tt.to, 1)
			if yml == relationsYAML {
				t.Fatal("replacement did not apply")
			}
			if _, err := Load(writeRelations(t, yml, relationsImage), "web"); err == nil {
				t.Error("publish validate accepts it")
			}
			if err := schemaCheck(t, s, yml); err == nil {
				t.Error("the schema accepts it")
			}
		})
	}
}

// What a schema cannot see: documents, declared ports, hooks in
// image.yaml, constraints no version satisfies. Each is one line naming
// the field.
func TestRelationsRefused(t *testing.T) {
	for _, tt := range []struct{ name, yml, image, want string }{
		{"interface not documented", strings.Replace(relationsYAML, "interface: postgresql", "interface: mysql", 1), relationsImage,
			`requires: interface "mysql" is not documented`},
		{"port not declared", strings.Replace(relationsYAML, "port: 80\nrequires", "port: 8080\nrequires", 1), relationsImage,
			"provides: http: port 8080 is not a declared port"},
		{"interface twice", strings.Replace(relationsYAML, "requires:", "- interface: http\nrequires:", 1), relationsImage,
			"provides: interface http is listed twice"},
		{"relation twice", strings.Replace(relationsYAML, "name: targets", "name: db", 1), relationsImage,
			"requires: relation db is listed twice"},
		{"unsatisfiable constraint", strings.Replace(relationsYAML, `">=1.1, <2"`, `">=2, <1"`, 1), relationsImage,
			"no version satisfies it"},
		{"hook missing", relationsYAML, strings.Replace(relationsImage, "/usr/lib/appliance/requires/db", "/usr/lib/appliance/db", 1),
			"the hook /usr/lib/appliance/requires/db is missing"},
		{"hook of an undeclared relation", strings.Replace(relationsYAML, "- name: db\n  interface: postgresql\n  version: \">=1.1, <2\"\n", "", 1), relationsImage,
			"/usr/lib/appliance/requires/db is the hook of a relation appliance.yaml does not declare (requires: name db)"},
		{"hook without mode", relationsYAML, strings.Replace(relationsImage, "  source: files/provides-http\n  mode: \"0755\"\n", "  source: files/provides-http\n", 1),
			`/usr/lib/appliance/provides/http: mode <nil>: give an executable mode`},
		{"hook mode not a string", relationsYAML, strings.Replace(relationsImage, `mode: "0755"`, "mode: 0755", 1),
			"give an executable mode as a quoted octal string"},
		{"hook mode not executable", relationsYAML, strings.Replace(relationsImage, `mode: "0750"`, `mode: "0644"`, 1),
			`/usr/lib/appliance/requires/targets: mode 0644`},
		{"hook source missing", relationsYAML, strings.Replace(relationsImage, "source: files/requires-db", "source: files/nothing", 1),
			`source "files/nothing": not a file of the appliance folder`},
		{"hook not a script", relationsYAML, strings.Replace(relationsImage, "#!/bin/sh\n    cat", "cat", 1),
			"/usr/lib/appliance/requires/targets: not a script"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeRelations(t, tt.yml, tt.image), "web")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// Every shipped interface document reads, and the shipped appliances
// provide and require only documented interfaces (TestSchemaAgreesWithValidate
// loads them).
func TestShippedInterfaces(t *testing.T) {
	root := filepath.Join("..", "..", "appliances")
	names, err := InterfaceNames(root)
	if err != nil || len(names) < 3 {
		t.Fatalf("interfaces %v: %v", names, err)
	}
	for _, n := range names {
		in, err := LoadInterface(root, n)
		if err != nil {
			t.Error(err)
			continue
		}
		if n == "postgresql" && len(in.Fields) != 6 {
			t.Errorf("postgresql hands over %d fields, want host, port, database, user, password, url", len(in.Fields))
		}
	}
	if _, err := LoadInterface(root, "nosuch"); err == nil || !strings.Contains(err.Error(), "documented: http, postgresql, prometheus-scrape") {
		t.Errorf("an undocumented interface: %v", err)
	}
}

func TestInterfaceDocumentRefused(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, InterfacesDir), 0o755)
	write := func(s string) {
		os.WriteFile(filepath.Join(root, InterfacesDir, "x.yaml"), []byte(s), 0o644)
	}
	good := "name: x\ndescription: d\nprovider: p\nconsumer: c\nfields:\n- {name: host, type: string, description: h}\n"
	write(good)
	if _, err := LoadInterface(root, "x"); err != nil {
		t.Fatal(err)
	}
	for bad, want := range map[string]string{
		strings.Replace(good, "name: x", "name: y", 1):                                                           `name: "y" differs from the file name "x"`,
		strings.Replace(good, "consumer: c\n", "", 1):                                                            "consumer: missing",
		strings.Replace(good, "type: string", "type: float", 1):                                                  `fields[0].type: "float" must be one of string, integer, list`,
		strings.Replace(good, "name: host", "name: Host", 1):                                                     `fields[0].name: "Host" must be a lowercase word`,
		strings.Replace(good, "fields:", "fields: []\nx:", 1):                                                    "field x not found",
		strings.Replace(good, "- {name: host", "- {name: host, type: string, description: h}\n- {name: host", 1): "fields[1].name: host is listed twice",
	} {
		write(bad)
		if _, err := LoadInterface(root, "x"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", bad, err, want)
		}
	}
}

// Providers come before their consumers; the rest keep their order.
func TestProvidersFirst(t *testing.T) {
	app := func(name string, provides []relations.Provide, requires ...relations.Require) *Appliance {
		return &Appliance{Name: name, Provides: provides, Requires: requires}
	}
	http := []relations.Provide{{Interface: "http"}}
	apps := []*Appliance{
		app("miniflux", http, relations.Require{Name: "db", Interface: "postgresql"}),
		app("nginx", http),
		app("postgresql", []relations.Provide{{Interface: "postgresql"}}),
		app("tls-proxy", nil, relations.Require{Name: "upstream", Interface: "http"}),
	}
	var names []string
	for _, a := range ProvidersFirst(apps) {
		names = append(names, a.Name)
	}
	if got := strings.Join(names, " "); got != "postgresql miniflux nginx tls-proxy" {
		t.Errorf("ProvidersFirst = %s", got)
	}
}
