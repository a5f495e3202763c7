// Package appliancetest writes appliance folders for tests: appliance
// web, valid as written, on the repository's debian/bookworm base.
package appliancetest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// ValidYAML is web's appliance.yaml: every field set and valid. Tests
// replace parts of it.
const ValidYAML = `name: web
description: A web server
version: 1.2.3
aliases: [www]
architectures: [amd64, arm64]
base: debian/bookworm
profiles: [web]
ports: [80/tcp, 53/udp]
service: {unit: nginx.service, user: www-data}
custom:
  homepage: https://example.org
healthcheck:
  http: {port: 80, path: /, status: 200}
`

// Write makes ROOT/web with yml as its appliance.yaml, a profile web and
// an image.yaml installing nginx-light, beside ROOT/_bases holding the
// repository's debian-bookworm base, and returns ROOT. (The file names
// are appliance.FileName, appliance.TemplateName and appliance.BasesDir,
// spelt out: that package's own tests use this one.)
func Write(t testing.TB, yml string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "web")
	files := map[string]string{
		"appliance.yaml":    yml,
		"profiles/web.yaml": "description: x\nconfig: {}\ndevices: {}\n",
		"image.yaml":        "packages: [nginx-light]\n",
	}
	for name, body := range files {
		WriteFile(t, filepath.Join(dir, name), body)
	}
	WriteFile(t, filepath.Join(root, "_bases", "debian-bookworm.yaml"), string(Base(t, "debian-bookworm.yaml")))
	return root
}

// Base returns the repository's base file name (appliances/_bases/NAME).
func Base(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(Repository(), "appliances", "_bases", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Repository is the repository's root folder.
func Repository() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// WriteFile writes body to path, making its folder.
func WriteFile(t testing.TB, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
