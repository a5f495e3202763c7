package debian

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.22.1-9", "1.22.1-9+deb12u1", -1},
		{"1.0~rc1", "1.0", -1},
		{"1.0", "1.0+b1", -1},
		{"1:0.9", "2.0", 1},
		{"7.0.15-1~deb12u1", "7.0.15-1", -1},
		{"2.36-9+deb12u9", "2.36-9+deb12u10", -1},
		{"1.0a", "1.0", 1},
		{"1.0-1", "1.0", 1},
		{"010", "10", 0},
		{"1.2.3", "1.2.10", -1},
		{"252.30-1~deb12u2", "252.33-1~deb12u1", -1},
	}
	for _, tt := range tests {
		got := CompareVersions(tt.a, tt.b)
		if sign(got) != tt.want || sign(CompareVersions(tt.b, tt.a)) != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		// dpkg itself agrees, where it is installed.
		if dpkg, err := exec.LookPath("dpkg"); err == nil {
			op := map[int]string{-1: "lt", 0: "eq", 1: "gt"}[tt.want]
			if err := exec.Command(dpkg, "--compare-versions", tt.a, op, tt.b).Run(); err != nil {
				t.Errorf("dpkg disagrees: %s %s %s is false", tt.a, op, tt.b)
			}
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

const status = `Package: nginx-light
Status: install ok installed
Priority: optional
Version: 1.22.1-9
Description: nginx web server
 with a long description

Package: gone
Status: deinstall ok config-files
Version: 1.0

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u9
`

func TestStatusAndList(t *testing.T) {
	p, err := ParseStatus(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	want := "libc6\t2.36-9+deb12u9\nnginx-light\t1.22.1-9\n"
	if got := p.Format(); got != want {
		t.Errorf("Format() = %q, want %q (config-files only packages are not installed)", got, want)
	}
	back, err := ParseList(want)
	if err != nil || back.Format() != want {
		t.Errorf("ParseList round trip: %v %v", back, err)
	}
	if _, err := ParseList("just-a-name\n"); err == nil {
		t.Error("a line without a version was accepted")
	}
}

func TestUpgradesAndChanges(t *testing.T) {
	installed := Packages{"nginx-light": "1.22.1-9", "libc6": "2.36-9+deb12u9", "local-only": "1.0"}
	available := Packages{"nginx-light": "1.22.1-9+deb12u1", "libc6": "2.36-9+deb12u9", "other": "3"}
	up := Upgrades(installed, available)
	if len(up) != 1 || up[0].String() != "nginx-light 1.22.1-9 → 1.22.1-9+deb12u1" {
		t.Errorf("Upgrades = %v", up)
	}
	ch := Changes(installed, Packages{"nginx-light": "1.22.1-9+deb12u1", "libc6": "2.36-9+deb12u9", "less": "590-2"})
	if strings.Join(ch, "; ") != "less 590-2 added; local-only removed; nginx-light 1.22.1-9 → 1.22.1-9+deb12u1" {
		t.Errorf("Changes = %q", ch)
	}
}

func TestParseSources(t *testing.T) {
	src, err := ParseSources(`# comment
deb http://deb.debian.org/debian bookworm main contrib
deb [signed-by=/k.gpg] http://deb.debian.org/debian-security/ bookworm-security main
deb-src http://deb.debian.org/debian bookworm main
`)
	if err != nil || len(src) != 2 || src[0].Components[1] != "contrib" || src[1].URI != "http://deb.debian.org/debian-security" || src[1].Suite != "bookworm-security" {
		t.Errorf("ParseSources = %+v, %v", src, err)
	}
	if _, err := ParseSources("deb http://x\n"); err == nil {
		t.Error("a short deb line was accepted")
	}
}

// The archive's newest version wins across suites; each index is fetched
// once.
func TestArchiveNewest(t *testing.T) {
	indexes := map[string]string{
		"/debian/dists/bookworm/main/binary-amd64/Packages.xz":            "Package: nginx-light\nVersion: 1.22.1-9\n\nPackage: libc6\nVersion: 2.36-9+deb12u9\n",
		"/security/dists/bookworm-security/main/binary-amd64/Packages.xz": "Package: nginx-light\nVersion: 1.22.1-9+deb12u1\n",
	}
	hits := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits[r.URL.Path]++
		body, ok := indexes[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		var b bytes.Buffer
		xw, _ := xz.NewWriter(&b)
		xw.Write([]byte(body))
		xw.Close()
		w.Write(b.Bytes())
	}))
	defer srv.Close()
	src, _ := ParseSources("deb " + srv.URL + "/debian bookworm main\ndeb " + srv.URL + "/security bookworm-security main\n")
	var a Archive
	for i := 0; i < 2; i++ {
		p, err := a.Newest(context.Background(), src, "amd64")
		if err != nil {
			t.Fatal(err)
		}
		if p["nginx-light"] != "1.22.1-9+deb12u1" || p["libc6"] != "2.36-9+deb12u9" {
			t.Errorf("Newest = %v", p)
		}
	}
	for path, n := range hits {
		if n != 1 {
			t.Errorf("%s fetched %d times", path, n)
		}
	}
	if _, err := a.Newest(context.Background(), []Source{{URI: srv.URL + "/nope", Suite: "x", Components: []string{"main"}}}, "amd64"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing index: %v", err)
	}
}

func TestPackageURL(t *testing.T) {
	for _, c := range []struct{ distro, name, version, arch, want string }{
		{"debian/trixie", "libstdc++6", "14.2.0-19", "amd64", "pkg:deb/debian/libstdc++6@14.2.0-19?arch=amd64&distro=debian-trixie"},
		{"debian/bookworm", "nginx", "1.22.1-9+deb12u1", "", "pkg:deb/debian/nginx@1.22.1-9+deb12u1?distro=debian-bookworm"},
		{"debian", "tzdata", "2024a-0+deb12u1", "all", "pkg:deb/debian/tzdata@2024a-0+deb12u1?arch=all"},
		{"debian/trixie", "libc6", "2:2.41-12", "arm64", "pkg:deb/debian/libc6@2:2.41-12?arch=arm64&distro=debian-trixie"},
	} {
		if got := PackageURL(c.distro, c.name, c.version, c.arch); got != c.want {
			t.Errorf("PackageURL(%q, %q, %q, %q) = %q, want %q", c.distro, c.name, c.version, c.arch, got, c.want)
		}
	}
}
