package appliance

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// schemaPath is the JSON Schema of appliance.yaml editors use.
const schemaPath = "../../appliances/appliance.schema.json"

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	s, err := c.Compile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// schemaCheck validates appliance.yaml text against the schema.
func schemaCheck(t *testing.T, s *jsonschema.Schema, yml string) error {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal([]byte(yml), &doc); err != nil {
		return err
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

// publish validate (Load) and the schema agree: every appliance of the
// repository passes both (the builder's tests check their templates with
// distrobuilder), every wrong file fails both.
func TestSchemaAgreesWithValidate(t *testing.T) {
	s := compileSchema(t)
	root := filepath.Join("..", "..", "appliances")
	names, err := Names(root)
	if err != nil || len(names) < 3 {
		t.Fatalf("%d appliances in %s, want at least 3 (%v)", len(names), root, err)
	}
	for _, name := range names {
		data, _ := os.ReadFile(filepath.Join(root, name, FileName))
		if _, err := Load(root, name); err != nil {
			t.Errorf("%s: validate: %v", name, err)
		}
		if err := schemaCheck(t, s, string(data)); err != nil {
			t.Errorf("%s: schema: %v", name, err)
		}
	}
	if err := schemaCheck(t, s, validYAML); err != nil {
		t.Errorf("the test's valid appliance: schema: %v", err)
	}

	wrong := []struct{ name, from, to string }{
		{"missing base", "base: debian/bookworm\n", ""},
		{"base not os/release", "base: debian/bookworm", "base: debian"},
		{"unknown requirement key", "base: debian/bookworm", "base: debian/bookworm\nrequirements: {nestng: \"true\"}"},
		{"bad requirement value", "base: debian/bookworm", "base: debian/bookworm\nrequirements: {privileged: \"yes\"}"},
		{"port 80/xyz", "ports: [80/tcp, 53/udp]", "ports: [80/xyz]"},
		{"port without protocol", "ports: [80/tcp, 53/udp]", "ports: [\"80\"]"},
		{"port out of range", "ports: [80/tcp, 53/udp]", "ports: [70000/tcp]"},
		{"service as root", "user: www-data", "user: root"},
		{"service unit not a service", "unit: nginx.service", "unit: nginx"},
		{"service without user", ", user: www-data}", "}"},
		{"relative volume", "base: debian/bookworm", "base: debian/bookworm\nvolumes: [var/lib/x]"},
		{"volume with ..", "base: debian/bookworm", "base: debian/bookworm\nvolumes: [/var/../etc]"},
		{"bad tag", "base: debian/bookworm", "base: debian/bookworm\ntags: [Web]"},
		{"custom sets a field", "homepage: https://example.org", "tags: web"},
		{"missing version", "version: 1.2.3\n", ""},
		{"version not semver", "version: 1.2.3", "version: \"1.2\""},
		{"name uppercase", "name: web", "name: Web"},
		{"missing description", "description: A web server\n", ""},
		{"no architectures", "architectures: [amd64, arm64]", "architectures: []"},
		{"unknown architecture", "architectures: [amd64, arm64]", "architectures: [sparc]"},
		{"unknown field", "base: debian/bookworm", "base: debian/bookworm\nbsae: x"},
		{"no healthcheck", "healthcheck:\n  http: {port: 80, path: /, status: 200}\n", ""},
		{"health http and command", "healthcheck:\n", "healthcheck:\n  command: [true]\n"},
		{"bad health port", "port: 80", "port: 0"},
		{"bad health path", "path: /,", "path: x,"},
		{"unknown variant", "base: debian/bookworm", "base: debian/bookworm\nvariants: [default, minimal]"},
		{"variant twice", "base: debian/bookworm", "base: debian/bookworm\nvariants: [cloud, cloud]"},
		{"unknown type", "base: debian/bookworm", "base: debian/bookworm\ntypes: [container, pod]"},
		{"vm without container", "base: debian/bookworm", "base: debian/bookworm\ntypes: [vm]"},
	}
	for _, tt := range wrong {
		t.Run(tt.name, func(t *testing.T) {
			yml := strings.Replace(validYAML, tt.from, tt.to, 1)
			if yml == validYAML {
				t.Fatal("replacement did not apply")
			}
			if _, err := Load(writeAppliance(t, yml), "web"); err == nil {
				t.Error("publish validate accepts it")
			}
			if err := schemaCheck(t, s, yml); err == nil {
				t.Error("the schema accepts it")
			}
		})
	}
}
