package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// An appliance with version_aliases: true published as 1.2.0, 1.3.0, 2.0.0
// and then a fix 1.2.1: the real Incus client resolves nginx and nginx/2
// to 2.0.0, nginx/1 to the newest 1.x (1.3.0), nginx/1.2 to 1.2.1 — an
// operator pinned to a line keeps getting that line.
func TestVersionAliasesWithIncusClient(t *testing.T) {
	root := newApplianceRoot(t)
	mustPublish(t, "new", "nginx", "--appliances", root, "--port", "80/tcp", "--package", "nginx-light", "--arch", "amd64")
	yml := filepath.Join(root, "nginx", "appliance.yaml")
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
