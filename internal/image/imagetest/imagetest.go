// Package imagetest writes fake Incus split images for tests in other
// packages: a metadata tarball built from a MetadataSpec and cheap root
// files (squashfs, qcow2, tar.xz) with pseudo-random, seed-determined
// content. The files pass image.Inspect but are not bootable.
package imagetest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/image"
)

// HostnameTemplate is the content of templates/hostname.tpl, which every
// metadata tarball written by WriteMetadata holds, as distrobuilder's do.
const HostnameTemplate = "{{ instance.name }}\n"

// MetadataSpec describes the metadata.yaml WriteMetadata writes. Empty
// string and zero fields are left out.
type MetadataSpec struct {
	Architecture string // top-level "architecture", e.g. "x86_64"
	ArchProperty string // properties.architecture, e.g. "amd64"
	CreationDate int64  // creation_date, Unix seconds
	ExpiryDate   int64  // expiry_date, Unix seconds
	OS           string // properties.os
	Release      string // properties.release
	Variant      string // properties.variant
	Description  string // properties.description
	Name         string // properties.name
	Serial       string // properties.serial
	// Omit lists dotted names of fields to leave out even though set, e.g.
	// "creation_date", "properties.os", "properties" or "templates".
	Omit []string
	// RawYAML, if not empty, is written as metadata.yaml instead.
	RawYAML string
	// NoMetadataYAML leaves metadata.yaml out of the tarball.
	NoMetadataYAML bool
}

// DefaultSpec returns a valid spec for an amd64 Debian bookworm image
// created at created, with properties.name set to name.
func DefaultSpec(name string, created time.Time) MetadataSpec {
	created = created.UTC()
	return MetadataSpec{
		Architecture: "x86_64",
		ArchProperty: "amd64",
		CreationDate: created.Unix(),
		ExpiryDate:   created.Add(30 * 24 * time.Hour).Unix(),
		OS:           "debian",
		Release:      "bookworm",
		Variant:      "default",
		Description:  "Debian bookworm " + name,
		Name:         name,
		Serial:       created.Format("20060102_1504"),
	}
}

// WriteMetadata writes dir/incus.tar.xz from m and returns its path.
func WriteMetadata(t testing.TB, dir string, m MetadataSpec) string {
	t.Helper()
	var yml []byte
	if !m.NoMetadataYAML {
		yml = m.YAML()
	}
	var buf bytes.Buffer
	tpl := map[string][]byte{"hostname.tpl": []byte(HostnameTemplate)}
	if err := image.WriteMetadataTarball(&buf, yml, tpl); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	return write(t, filepath.Join(dir, "incus.tar.xz"), buf.Bytes())
}

// write writes a file or fails the test.
func write(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	return path
}

// Rewrite changes a file's bytes in place, keeping its size and
// modification time: a file changed behind its digest record's back.
func Rewrite(t testing.TB, path string, change func([]byte)) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	change(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}
