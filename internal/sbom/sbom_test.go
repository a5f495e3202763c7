package sbom

import (
	"strings"
	"testing"
	"time"
)

const status = `Package: libstdc++6
Status: install ok installed
Architecture: amd64
Source: gcc-14
Version: 14.2.0-19
Maintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>
Description: GNU Standard C++ Library v3
 A multi-line description.

Package: nginx-light
Status: install ok installed
Architecture: amd64
Version: 1.26.3-3+deb13u1

Package: removed-one
Status: deinstall ok config-files
Version: 1.0
`

func TestFromDpkgStatus(t *testing.T) {
	created := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	data, err := FromDpkgStatus(strings.NewReader(status), Subject{Name: "nginx", Version: "1.0.0", Arch: "amd64", Distro: "debian/trixie", Created: created})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Packages) != 2 || len(d.Relationships) != 2 || d.CreationInfo.Created != "2026-11-30T03:00:00Z" || d.DataLicense != "CC0-1.0" {
		t.Fatalf("document: %s", data)
	}
	p := d.Packages[0]
	if p.Name != "libstdc++6" || p.VersionInfo != "14.2.0-19" || p.SPDXID != "SPDXRef-Package-deb-libstdc--6-0" ||
		p.ExternalRefs[0].Locator != "pkg:deb/debian/libstdc++6@14.2.0-19?arch=amd64&distro=debian-trixie" || !strings.Contains(p.SourceInfo, "gcc-14") {
		t.Errorf("package: %+v", p)
	}
	if d.Packages[1].Name != "nginx-light" || d.Packages[1].VersionInfo != "1.26.3-3+deb13u1" {
		t.Errorf("package: %+v", d.Packages[1])
	}
	again, _ := FromDpkgStatus(strings.NewReader(status), Subject{Name: "nginx", Version: "1.0.0", Arch: "amd64", Distro: "debian/trixie", Created: created})
	if string(again) != string(data) {
		t.Error("the same status gives a different document")
	}
	if _, err := FromDpkgStatus(strings.NewReader(""), Subject{}); err == nil {
		t.Error("an empty status gave an SBOM")
	}
}
