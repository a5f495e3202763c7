package appliance

import (
	"encoding/json"
	"os"
	"os/exec"
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

// --port without --package is refused, saying why: nothing would listen
// on it and its health check would fail.
func TestNewRefusesAPortNothingServes(t *testing.T) {
	root := writeAppliance(t, validYAML)
	_, err := New(root, "zzheavy", NewOptions{Base: "debian/bookworm", Ports: []string{"8080/tcp"}})
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "--port 8080/tcp without --package: nothing in the image would listen on it") {
		t.Errorf("New = %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "zzheavy")); err == nil {
		t.Error("a refused folder was written")
	}
}

// --provides and --requires scaffold the relations with hook stubs that
// carry the interface's documented fields: the folder validates, the
// provider's stub prints the fields as JSON, the consumer's records what
// it receives and says configured, then unchanged.
func TestNewScaffoldsRelations(t *testing.T) {
	root := writeRelations(t, relationsYAML, relationsImage)
	a, err := New(root, "app", NewOptions{Base: "debian/bookworm", Ports: []string{"80/tcp"}, Packages: []string{"nginx-light"},
		Provides: []string{"http"}, Requires: []string{"db=postgresql"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Provides) != 1 || a.Provides[0].Interface != "http" || len(a.Requires) != 1 || a.Requires[0].Name != "db" || a.Requires[0].Interface != "postgresql" {
		t.Fatalf("relations %+v %+v", a.Provides, a.Requires)
	}
	data, _ := os.ReadFile(filepath.Join(a.Dir, FileName))
	if err := schemaCheck(t, compileSchema(t), string(data)); err != nil {
		t.Errorf("schema: %v\n%s", err, data)
	}
	provider, _ := os.ReadFile(filepath.Join(a.Dir, "files", "provides-http"))
	consumer, _ := os.ReadFile(filepath.Join(a.Dir, "files", "requires-db"))
	if !strings.Contains(string(provider), "#   health_path (string):") || !strings.Contains(string(consumer), "#   password (string):") {
		t.Errorf("the stubs do not document the fields:\n%s\n%s", provider, consumer)
	}
	out, err := exec.Command("sh", filepath.Join(a.Dir, "files", "provides-http"), "rss").Output()
	var fields map[string]any
	if err != nil || json.Unmarshal(out, &fields) != nil || len(fields) != 4 {
		t.Errorf("the provider stub printed %q (%v), want the http fields", out, err)
	}
	state := filepath.Join(t.TempDir(), "db.json")
	stub := filepath.Join(t.TempDir(), "requires-db")
	os.WriteFile(stub, []byte(strings.ReplaceAll(string(consumer), "/var/lib/appliance/relations/db.json", state)), 0o755)
	for _, want := range []string{"db: configured", "db: unchanged"} {
		cmd := exec.Command("sh", stub)
		cmd.Stdin = strings.NewReader(`{"host": "10.0.0.2", "port": 5432}`)
		if out, err := cmd.Output(); err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("the consumer stub said %q (%v), want %q", out, err, want)
		}
	}
	cmd := exec.Command("sh", stub)
	cmd.Stdin = strings.NewReader("not json")
	if err := cmd.Run(); err == nil {
		t.Error("the consumer stub took what is not JSON")
	}
	if _, err := New(root, "bad", NewOptions{Base: "debian/bookworm", Requires: []string{"db"}}); err == nil || !strings.Contains(err.Error(), "give NAME=INTERFACE") {
		t.Errorf("--requires db: %v", err)
	}
	if _, err := New(root, "bad", NewOptions{Base: "debian/bookworm", Provides: []string{"nosuch"}}); err == nil || !strings.Contains(err.Error(), "--provides nosuch") {
		t.Errorf("--provides nosuch: %v", err)
	}
}
