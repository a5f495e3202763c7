package appliance

import (
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/appliance/appliancetest"
)

// validYAML is an appliance.yaml with every field set, in the folder
// writeAppliance makes.
const validYAML = appliancetest.ValidYAML

func writeAppliance(t *testing.T, yml string) string { return appliancetest.Write(t, yml) }

func TestLoadValid(t *testing.T) {
	a, err := Load(writeAppliance(t, validYAML), "web")
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != "1.2.3" || strings.Join(a.Arches(), ",") != "amd64,arm64" || a.Health.HTTP.Port != 80 || a.catalogCustom()["ports"] != "80/tcp,53/udp" ||
		a.Service.User != "www-data" || len(a.PortList()) != 2 || a.PortList()[1] != (Port{53, "udp"}) {
		t.Errorf("loaded %+v", a)
	}
}

// Version lines are the default; version_aliases: false opts out.
func TestLinesByDefault(t *testing.T) {
	for yml, want := range map[string]bool{validYAML: true, validYAML + "version_aliases: true\n": true, validYAML + "version_aliases: false\n": false} {
		a, err := Load(writeAppliance(t, yml), "web")
		if err != nil || a.Lines() != want {
			t.Errorf("Lines() = %v, %v; want %v with\n%s", a != nil && a.Lines(), err, want, yml)
		}
	}
}

func TestLoadReportsEveryBadField(t *testing.T) {
	tests := []struct{ name, from, to, want string }{
		{"missing name", "name: web\n", "", "name: missing"},
		{"name differs from folder", "name: web", "name: other", `"other" differs from the folder name "web"`},
		{"bad name", "name: web", "name: Web", "must start with a lowercase letter"},
		{"missing description", "description: A web server\n", "", "description: missing"},
		{"missing version", "version: 1.2.3\n", "", "version: missing"},
		{"version not semver", "version: 1.2.3", "version: \"1.2\"", `"1.2" is not a semantic version`},
		// The one rule is internal/semver's: an empty pre-release identifier
		// is no semantic version (the pattern appliance.go had let it by).
		{"empty pre-release identifier", "version: 1.2.3", "version: 1.2.3-rc..1", `"1.2.3-rc..1" is not a semantic version`},
		{"bad alias", "aliases: [www]", "aliases: [\"a b\"]", `aliases: alias "a b" contains ' '`},
		{"no architectures", "architectures: [amd64, arm64]", "architectures: []", "architectures: missing"},
		{"unknown architecture", "architectures: [amd64, arm64]", "architectures: [sparc]", `unknown architecture "sparc"`},
		{"duplicate architecture", "architectures: [amd64, arm64]", "architectures: [amd64, x86_64]", "listed twice"},
		{"bad base", "base: debian/bookworm", "base: debian", `"debian" must be os/release`},
		{"missing profile file", "profiles: [web]", "profiles: [db]", "profiles/db.yaml does not exist"},
		{"no healthcheck", "healthcheck:\n  http: {port: 80, path: /, status: 200}\n", "", "healthcheck: missing"},
		{"bad health port", "port: 80", "port: 0", "http.port 0"},
		{"bad health path", "path: /,", "path: x,", `http.path "x" must start with /`},
		{"bad health status", "status: 200", "status: 2000", "http.status 2000"},
		{"bad port", "ports: [80/tcp, 53/udp]", "ports: [80]", `ports: "80" is not PORT/PROTO`},
		{"bad port protocol", "ports: [80/tcp, 53/udp]", "ports: [80/sctp]", "protocol must be tcp or udp"},
		{"port out of range", "ports: [80/tcp, 53/udp]", "ports: [70000/tcp]", "is not PORT/PROTO"},
		{"duplicate port", "ports: [80/tcp, 53/udp]", "ports: [80/tcp, 80/tcp]", "listed twice"},
		{"ports in custom too", "homepage: https://example.org", "ports: 80/tcp", "custom: ports: declare ports in the ports field only"},
		{"service as root", "user: www-data", "user: root", "service: user must not be root"},
		{"service without user", ", user: www-data}", "}", "service: user missing"},
		{"service unit not a service", "unit: nginx.service", "unit: nginx", `unit "nginx" must be a systemd service name`},
		{"unknown field", "base: debian/bookworm", "base: debian/bookworm\nbsae: x", "field bsae not found"},
		{"wrong type", "version: 1.2.3", "version: [1]", "cannot unmarshal"},
		{"unknown requirement", "base: debian/bookworm", "base: debian/bookworm\nrequirements: {nestng: \"true\"}", `requirements: unknown key "nestng": Incus knows cdrom_agent, cgroup, nesting, privileged, secureboot`},
		{"bad requirement value", "base: debian/bookworm", "base: debian/bookworm\nrequirements: {nesting: \"yes\"}", `requirements: nesting: "yes" must be one of true, false`},
		{"port 80/xyz", "ports: [80/tcp, 53/udp]", "ports: [80/xyz]", `ports: "80/xyz": protocol must be tcp or udp`},
		{"relative volume", "base: debian/bookworm", "base: debian/bookworm\nvolumes: [var/lib/x]", `volumes: "var/lib/x" must be a clean absolute path`},
		{"bad tag", "base: debian/bookworm", "base: debian/bookworm\ntags: [Web Server]", `tags: "Web Server" must be a lowercase word`},
		{"missing base", "base: debian/bookworm\n", "", `base: "" must be os/release`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yml := strings.Replace(validYAML, tt.from, tt.to, 1)
			if yml == validYAML {
				t.Fatal("replacement did not apply")
			}
			_, err := Load(writeAppliance(t, yml), "web")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "web/appliance.yaml") {
				t.Errorf("error = %v\nwant one naming web/appliance.yaml and containing %q", err, tt.want)
			}
		})
	}
	t.Run("missing appliance", func(t *testing.T) {
		_, err := Load(writeAppliance(t, validYAML), "nope")
		if err == nil || !strings.Contains(err.Error(), `no appliance "nope"`) || !strings.Contains(err.Error(), "there are: web") {
			t.Errorf("error = %v", err)
		}
	})
}
