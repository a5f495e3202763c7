// Package sbom writes the software bill of materials of an appliance
// image: an SPDX 2.3 JSON document listing the Debian packages installed
// in its root, read from the root's dpkg database (var/lib/dpkg/status).
package sbom

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/debian"
	"github.com/incus-appliance/registry/internal/digest"
)

// FileName is the SBOM beside a build's outputs and an image's files.
const FileName = "sbom.spdx.json"

// Subject is what the SBOM describes.
type Subject struct {
	// Name and Version of the appliance; Arch its architecture.
	Name, Version, Arch string
	// Distro is "os/release" (its base), e.g. debian/trixie.
	Distro string
	// Created is when the image was built.
	Created time.Time
}

// Document is an SPDX 2.3 document (the fields this package writes).
type Document struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      CreationInfo   `json:"creationInfo"`
	Packages          []Package      `json:"packages"`
	Relationships     []Relationship `json:"relationships"`
}

// CreationInfo says who made the document and when.
type CreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

// Package is one installed Debian package.
type Package struct {
	Name             string        `json:"name"`
	SPDXID           string        `json:"SPDXID"`
	VersionInfo      string        `json:"versionInfo"`
	Supplier         string        `json:"supplier,omitempty"`
	DownloadLocation string        `json:"downloadLocation"`
	FilesAnalyzed    bool          `json:"filesAnalyzed"`
	LicenseConcluded string        `json:"licenseConcluded"`
	LicenseDeclared  string        `json:"licenseDeclared"`
	CopyrightText    string        `json:"copyrightText"`
	SourceInfo       string        `json:"sourceInfo,omitempty"`
	ExternalRefs     []ExternalRef `json:"externalRefs,omitempty"`
}

// ExternalRef is a package URL (purl).
type ExternalRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

// Relationship links two SPDX elements.
type Relationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

var idUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]`)

// FromDpkgStatus reads a dpkg status file and returns the SPDX JSON of
// the installed packages, sorted by name and architecture.
func FromDpkgStatus(status io.Reader, s Subject) ([]byte, error) {
	type pkg struct{ name, version, arch, source, maintainer string }
	var pkgs []pkg
	err := debian.ParseControl(status, func(f map[string]string) {
		if strings.HasSuffix(f["Status"], " installed") && f["Package"] != "" {
			pkgs = append(pkgs, pkg{f["Package"], f["Version"], f["Architecture"], f["Source"], f["Maintainer"]})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("dpkg status: %w", err)
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("dpkg status lists no installed package")
	}
	sort.Slice(pkgs, func(i, j int) bool {
		if pkgs[i].name != pkgs[j].name {
			return pkgs[i].name < pkgs[j].name
		}
		return pkgs[i].arch < pkgs[j].arch
	})
	doc := Document{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name: fmt.Sprintf("%s %s (%s)", s.Name, s.Version, s.Arch),
		CreationInfo: CreationInfo{
			Created:  s.Created.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: incus-appliance-registry publish build"},
		},
	}
	list := digest.New()
	for i, p := range pkgs {
		fmt.Fprintf(list, "%s\t%s\t%s\n", p.name, p.version, p.arch)
		id := fmt.Sprintf("SPDXRef-Package-deb-%s-%d", idUnsafe.ReplaceAllString(p.name, "-"), i)
		purl := debian.PackageURL(s.Distro, p.name, p.version, p.arch)
		sp := Package{
			Name: p.name, SPDXID: id, VersionInfo: p.version,
			DownloadLocation: "NOASSERTION", LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
			ExternalRefs: []ExternalRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: purl}},
		}
		if p.maintainer != "" {
			sp.Supplier = "Person: " + p.maintainer
		}
		if p.source != "" {
			sp.SourceInfo = "built from Debian source package " + p.source
		}
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, Relationship{"SPDXRef-DOCUMENT", "DESCRIBES", id})
	}
	doc.DocumentNamespace = fmt.Sprintf("https://incus-appliance-registry.invalid/spdx/%s/%s/%s/%s", s.Name, s.Version, s.Arch, digest.Hex(list)[:16])
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Parse reads an SPDX document this package wrote.
func Parse(data []byte) (*Document, error) {
	var d Document
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("SBOM: %w", err)
	}
	if d.SPDXVersion != "SPDX-2.3" || d.SPDXID != "SPDXRef-DOCUMENT" {
		return nil, fmt.Errorf("SBOM: not an SPDX 2.3 document")
	}
	return &d, nil
}
