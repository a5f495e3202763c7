package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/sbom"
)

// An appliance made by publish new, with volumes, requirements and tags
// added, published from a build folder holding an SBOM: publish list
// (table and --json) shows the metadata and the SBOM, publish sbom prints
// the SBOM as uploaded, verify checks it, and the real Incus client still
// sees exactly the one image with the product's requirements.
func TestApplianceMetadataAndSBOM(t *testing.T) {
	root, yml := newWebAppliance(t, "web")
	data, _ := os.ReadFile(yml)
	data = append(data, "volumes: [/var/www]\nrequirements: {nesting: \"true\"}\ntags: [web, http]\n"...)
	os.WriteFile(yml, data, 0o644)
	mustPublish(t, "validate", "web", "--appliances", root)

	buildDir := t.TempDir()
	dir := filepath.Join(buildDir, "web", "amd64")
	os.MkdirAll(dir, 0o755)
	meta, rootfs := sampleImage(t, "web", t0, 7)
	for src, dst := range map[string]string{meta: "incus.tar.xz", rootfs: "rootfs.squashfs"} {
		b, _ := os.ReadFile(src)
		os.WriteFile(filepath.Join(dir, dst), b, 0o644)
	}
	doc, err := sbom.FromDpkgStatus(strings.NewReader("Package: nginx-light\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.26.3-3\n"),
		sbom.Subject{Name: "web", Version: "0.1.0", Arch: "amd64", Distro: "debian/trixie", Created: t0})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, sbom.FileName), doc, 0o644)

	reg := filepath.Join(t.TempDir(), "registry")
	mustPublish(t, "web", "--bucket", reg, "--build-dir", buildDir, "--appliances", root)
	mustPublish(t, "verify", "--bucket", reg)
	fp := fingerprintOf(t, meta, rootfs)

	entries := list(t, reg)
	if len(entries) != 1 {
		t.Fatalf("list --json: %+v", entries)
	}
	e := entries[0]
	wantSBOM := "images/" + fp + "/sbom.spdx.json"
	if e.SBOM != wantSBOM || e.Custom["sbom"] != wantSBOM || e.Custom["ports"] != "80/tcp" || e.Custom["volumes"] != "/var/www" ||
		e.Custom["tags"] != "web,http" || e.Requirements["nesting"] != "true" {
		t.Errorf("list --json entry: %+v", e)
	}
	table := mustPublish(t, "list", "--bucket", reg)
	if !strings.Contains(table, "PORTS") || !strings.Contains(table, "80/tcp") || !strings.Contains(table, "/var/www") || !strings.Contains(table, "web,http") {
		t.Errorf("list:\n%s", table)
	}
	if got := mustPublish(t, "sbom", "web", "--bucket", reg); got != string(doc) {
		t.Errorf("publish sbom web printed\n%s\nwant\n%s", got, doc)
	}
	if stored, _ := os.ReadFile(filepath.Join(reg, wantSBOM)); string(stored) != string(doc) {
		t.Error("the stored SBOM differs from the build's")
	}
	if r := publish(t, "sbom", "nope", "--bucket", reg); r.code != 1 || !strings.Contains(r.stderr, `no image or alias "nope"`) {
		t.Errorf("sbom of a missing image: %d %s", r.code, r.stderr)
	}

	url, cert := serveHTTPS(t, reg)
	incus := remoteClient(t, "incus", "reg", url, cert)
	if got := incus.list(t, "reg"); len(got) != 1 || got[fp] == nil {
		t.Errorf("incus image list: %v, want only %s", got, fp)
	}
	incus.wantInfo(t, "reg:web", fp)
}

// Bad appliance folders: publish validate (and build, before running
// distrobuilder) exits 1 with one error naming the file and the field.
func TestBadApplianceFolders(t *testing.T) {
	tests := []struct {
		name, file, from, to, want string
	}{
		{"missing base", "appliance.yaml", "base: debian/trixie\n", "", `appliance.yaml: base: "" must be os/release`},
		{"unknown base", "appliance.yaml", "base: debian/trixie", "base: debian/sid", `appliance.yaml: base: "debian/sid" has no base file`},
		{"unknown requirement key", "appliance.yaml", "base: debian/trixie", "base: debian/trixie\nrequirements: {nestin: \"true\"}", `appliance.yaml: requirements: unknown key "nestin"`},
		{"port 80/xyz", "appliance.yaml", "ports: [80/tcp]", "ports: [80/xyz]", `appliance.yaml: ports: "80/xyz": protocol must be tcp or udp`},
		{"overlay redefines the network file", "image.yaml", "packages: [nginx-light]", "packages: [nginx-light]\nfiles:\n- {path: /etc/systemd/network/eth0.network, generator: dump, content: x}",
			"image.yaml: files[0].path: /etc/systemd/network/eth0.network is the base's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newApplianceRoot(t)
			mustPublish(t, "new", "web", "--appliances", root, "--port", "80/tcp", "--package", "nginx-light")
			path := filepath.Join(root, "web", tt.file)
			data, _ := os.ReadFile(path)
			changed := strings.Replace(string(data), tt.from, tt.to, 1)
			if changed == string(data) {
				t.Fatalf("%s has no %q:\n%s", tt.file, tt.from, data)
			}
			os.WriteFile(path, []byte(changed), 0o644)
			for _, cmd := range [][]string{{"validate", "web"}, {"build", "web", "--build-dir", t.TempDir()}} {
				r := publish(t, append(cmd, "--appliances", root)...)
				if r.code != 1 || !strings.Contains(r.stderr+r.stdout, tt.want) || !strings.Contains(r.stderr+r.stdout, filepath.Join("web", tt.file)) {
					t.Errorf("publish %s: exit %d\nstdout %s\nstderr %s\nwant %q", cmd[0], r.code, r.stdout, r.stderr, tt.want)
				}
			}
		})
	}
}

// An appliance with version_aliases: true published as 1.2.0, 1.3.0, 2.0.0
// and then a fix 1.2.1: the real Incus client resolves nginx and nginx/2
// to 2.0.0, nginx/1 to the newest 1.x (1.3.0), nginx/1.2 to 1.2.1 — an
// operator pinned to a line keeps getting that line.
func TestVersionAliasesWithIncusClient(t *testing.T) {
	root, yml := newWebAppliance(t, "nginx")
	orig, _ := os.ReadFile(yml)
	reg := filepath.Join(t.TempDir(), "registry")
	fps := map[string]string{}
	for i, version := range []string{"1.2.0", "1.3.0", "2.0.0", "1.2.1"} {
		data := regexp.MustCompile(`(?m)^version: .*$`).ReplaceAll(orig, []byte("version: "+version))
		os.WriteFile(yml, append(data, "version_aliases: true\n"...), 0o644)
		buildDir := t.TempDir()
		dir := filepath.Join(buildDir, "nginx", "amd64")
		os.MkdirAll(dir, 0o755)
		meta, rootfs := sampleImage(t, "nginx", t0.Add(time.Duration(i)*24*time.Hour), int64(10+i))
		for src, dst := range map[string]string{meta: "incus.tar.xz", rootfs: "rootfs.squashfs"} {
			b, _ := os.ReadFile(src)
			os.WriteFile(filepath.Join(dir, dst), b, 0o644)
		}
		mustPublish(t, "nginx", "--bucket", reg, "--build-dir", buildDir, "--appliances", root)
		fps[version] = fingerprintOf(t, meta, rootfs)
	}
	mustPublish(t, "verify", "--bucket", reg)

	url, cert := serveHTTPS(t, reg)
	incus := remoteClient(t, "incus", "reg", url, cert)
	got := incus.list(t, "reg")
	want := map[string]string{
		fps["1.2.1"]: "nginx/1.2,nginx/1.2/amd64",
		fps["1.3.0"]: "nginx/1,nginx/1.3,nginx/1.3/amd64,nginx/1/amd64",
		fps["2.0.0"]: "nginx,nginx/2,nginx/2.0,nginx/2.0/amd64,nginx/2/amd64,nginx/amd64",
		fps["1.2.0"]: "",
	}
	if len(got) != 4 {
		t.Fatalf("incus image list: %d images %v, want 4", len(got), got)
	}
	for fp, aliases := range want {
		if strings.Join(got[fp], ",") != aliases {
			t.Errorf("incus image list: %s has aliases %v, want %s", fp[:12], got[fp], aliases)
		}
	}
	for alias, version := range map[string]string{"nginx": "2.0.0", "nginx/2": "2.0.0", "nginx/2.0": "2.0.0", "nginx/1": "1.3.0", "nginx/1.3": "1.3.0", "nginx/1.2": "1.2.1"} {
		incus.wantInfo(t, "reg:"+alias, fps[version])
	}
}
