package appliance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/incus-appliance/registry/internal/debian"
)

// Files a build leaves beside its outputs for later update checks: the
// installed packages (`dpkg-query -W` format) and the image's APT sources.
const (
	PackagesFile = "packages.txt"
	SourcesFile  = "sources.list"
)

// recordPackages reads the installed package list and the APT sources
// out of the built root (unsquashfs -cat) into dir.
func recordPackages(ctx context.Context, dir string) error {
	root := filepath.Join(dir, "rootfs.squashfs")
	status, err := catFromSquashfs(ctx, root, "var/lib/dpkg/status")
	if err != nil {
		return err
	}
	pkgs, err := debian.ParseStatus(bytes.NewReader(status))
	if err != nil {
		return err
	}
	if len(pkgs) == 0 {
		return fmt.Errorf("the built root lists no installed packages in var/lib/dpkg/status")
	}
	if err := os.WriteFile(filepath.Join(dir, PackagesFile), []byte(pkgs.Format()), 0o644); err != nil {
		return err
	}
	sources, err := catFromSquashfs(ctx, root, "etc/apt/sources.list")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, SourcesFile), sources, 0o644)
}

func catFromSquashfs(ctx context.Context, squashfs, path string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "unsquashfs", "-cat", squashfs, path)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("read %s from the built root: unsquashfs: %v: %s", path, err, bytes.TrimSpace(errb.Bytes()))
	}
	return out.Bytes(), nil
}

// InstalledPackages is the package list recorded by the build in dir
// (nil, nil when that build recorded none).
func InstalledPackages(dir string) (debian.Packages, error) {
	data, err := os.ReadFile(filepath.Join(dir, PackagesFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return debian.ParseList(string(data))
}

// AptSources is the APT sources of the image built in dir.
func AptSources(dir string) ([]debian.Source, error) {
	data, err := os.ReadFile(filepath.Join(dir, SourcesFile))
	if err != nil {
		return nil, fmt.Errorf("the build in %s recorded no APT sources (%w): rebuild it", dir, err)
	}
	return debian.ParseSources(string(data))
}
