package appliance

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/incus-appliance/registry/internal/sbom"
)

// writeSBOM writes the SPDX SBOM of the root built in dir (its dpkg
// database) beside the outputs.
func writeSBOM(ctx context.Context, a *Appliance, arch, dir string) error {
	status, err := catFromSquashfs(ctx, filepath.Join(dir, "rootfs.squashfs"), "var/lib/dpkg/status")
	if err != nil {
		return err
	}
	doc, err := sbom.FromDpkgStatus(bytes.NewReader(status), sbom.Subject{
		Name: a.Name, Version: a.Version, Arch: arch, Distro: a.Base, Created: time.Now(),
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, sbom.FileName), doc, 0o644)
}

// BuiltSBOM is the SBOM file of the build of name for arch ("" when that
// build has none).
func BuiltSBOM(outDir, name, arch string) string {
	p := filepath.Join(outDir, name, arch, sbom.FileName)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
