package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// publish new writes a folder that validates (and passes the schema);
// bad input writes nothing.
func TestNewWritesAValidAppliance(t *testing.T) {
	root := writeAppliance(t, validYAML)
	trixie, _ := os.ReadFile("../../appliances/_bases/debian-trixie.yaml")
	os.WriteFile(filepath.Join(root, BasesDir, "debian-trixie.yaml"), trixie, 0o644)
	a, err := New(root, "hello", NewOptions{Ports: []string{"8080/tcp", "53/udp"}, Packages: []string{"nginx-light", "curl"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Base != "debian/trixie" || len(a.PortList()) != 2 || len(a.Health.Command) != 3 || !strings.Contains(a.Health.Command[2], "/dev/tcp/127.0.0.1/$p") ||
		!strings.Contains(a.Health.Command[2], "for p in 8080;") {
		t.Errorf("new appliance: %+v", a)
	}
	tmpl, err := a.Template()
	if err != nil || !strings.Contains(string(tmpl), "- nginx-light") || !strings.Contains(string(tmpl), "release: trixie") {
		t.Errorf("template: %v\n%s", err, tmpl)
	}
	data, _ := os.ReadFile(filepath.Join(a.Dir, FileName))
	if err := schemaCheck(t, compileSchema(t), string(data)); err != nil {
		t.Errorf("schema: %v\n%s", err, data)
	}

	for _, tt := range []struct {
		name string
		o    NewOptions
		want string
	}{
		{"hello", NewOptions{}, "already exists"},
		{"Bad", NewOptions{}, "must start with a lowercase letter"},
		{"x", NewOptions{Ports: []string{"80/xyz"}}, "protocol must be tcp or udp"},
		{"y", NewOptions{Base: "debian/sid"}, `base: "debian/sid" has no base file`},
		{"z", NewOptions{Packages: []string{"a b"}}, "is not a Debian package name"},
	} {
		if _, err := New(root, tt.name, tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%s, %+v) = %v, want %q", tt.name, tt.o, err, tt.want)
		}
	}
	names, _ := Names(root)
	entries, _ := os.ReadDir(root)
	if strings.Join(names, ",") != "hello,web" || len(entries) != 3 {
		t.Errorf("after the failures: appliances %v, %d entries in root", names, len(entries))
	}
}
