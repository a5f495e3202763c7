package builder

// What a build reads out of its root (unsquashfs): the clean check, the
// installed packages and APT sources, the SBOM.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/debian"
	"github.com/incus-appliance/registry/internal/sbom"
)

// checkClean checks a built root (a squashfs) holds nothing that belongs
// to the build rather than to an instance: /etc/machine-id is empty (each
// instance makes its own) and dbus's id is not baked in; no SSH host keys
// or TLS private keys, no shell history, no non-empty log files, no APT
// lists or downloaded packages; no account with a password (a default
// password) or an empty one. It returns every problem found, one per
// line.
func checkClean(ctx context.Context, squashfs string) error {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "unsquashfs", "-lls", "-d", "", squashfs)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("list the built root: unsquashfs: %v: %s", err, bytes.TrimSpace(errb.Bytes()))
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	files := map[string]fileInfo{}
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if fi, ok := parseLLS(sc.Text()); ok {
			files[fi.path] = fi
		}
	}
	for p, fi := range files {
		base := path.Base(p)
		switch {
		case strings.HasPrefix(p, "/etc/ssh/ssh_host_"):
			bad("%s: an SSH host key made at build time (every instance would share it)", p)
		case strings.HasPrefix(p, "/etc/ssl/private/") && fi.regular:
			bad("%s: a TLS private key made at build time (every instance would share it): make it on first boot", p)
		case (strings.HasPrefix(p, "/root/") || strings.HasPrefix(p, "/home/")) && isHistory(base):
			bad("%s: shell history left by the build", p)
		case strings.HasPrefix(p, "/var/log/") && fi.regular && fi.size > 0:
			bad("%s: a log file left by the build (%d bytes)", p, fi.size)
		case strings.HasPrefix(p, "/var/lib/apt/lists/") && fi.regular && base != "lock":
			bad("%s: APT lists left by the build", p)
		case strings.HasPrefix(p, "/var/cache/apt/") && (strings.HasSuffix(p, ".deb") || strings.HasSuffix(p, ".bin")):
			bad("%s: APT cache left by the build", p)
		}
	}
	if fi, ok := files["/etc/machine-id"]; ok && fi.regular && fi.size > 0 {
		if id, _ := catFromSquashfs(ctx, squashfs, "etc/machine-id"); strings.TrimSpace(string(id)) != "uninitialized" {
			bad("/etc/machine-id: not empty (%d bytes): every instance would share the build's id", fi.size)
		}
	}
	if fi, ok := files["/var/lib/dbus/machine-id"]; ok && fi.regular && fi.size > 0 {
		bad("/var/lib/dbus/machine-id: dbus's id made at build time: link it to /etc/machine-id")
	}
	if _, ok := files["/etc/shadow"]; ok {
		shadow, err := catFromSquashfs(ctx, squashfs, "etc/shadow")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(shadow), "\n") {
			f := strings.Split(line, ":")
			if len(f) < 2 || f[0] == "" {
				continue
			}
			switch pw := f[1]; {
			case pw == "":
				bad("/etc/shadow: %s has an empty password", f[0])
			case !strings.HasPrefix(pw, "!") && !strings.HasPrefix(pw, "*"):
				bad("/etc/shadow: %s has a password set at build time (a default password): generate it on first boot", f[0])
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("the built root is not clean: %s", strings.Join(problems, "; "))
	}
	return nil
}

func isHistory(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, "history") || name == ".lesshst" || name == ".viminfo"
}

type fileInfo struct {
	path    string
	regular bool
	size    int64
}

// parseLLS reads one line of `unsquashfs -lls -d ""`:
// "-rw-r--r-- root/root 607 2026-11-08 20:20 /root/.bashrc".
func parseLLS(line string) (fileInfo, bool) {
	f := strings.Fields(line)
	if len(f) < 6 || len(f[0]) != 10 {
		return fileInfo{}, false
	}
	p := strings.Join(f[5:], " ")
	if i := strings.Index(p, " -> "); i >= 0 && f[0][0] == 'l' {
		p = p[:i]
	}
	size, _ := strconv.ParseInt(f[2], 10, 64)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return fileInfo{path: p, regular: f[0][0] == '-', size: size}, true
}

// recordPackages reads the installed package list (`dpkg-query -W`
// format) and the APT sources out of the built root (unsquashfs -cat)
// into dir, for later update checks.
func recordPackages(ctx context.Context, dir string) error {
	root := filepath.Join(dir, rootfsFile)
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
	if err := os.WriteFile(filepath.Join(dir, packagesFile), []byte(pkgs.Format()), 0o644); err != nil {
		return err
	}
	sources, err := catFromSquashfs(ctx, root, "etc/apt/sources.list")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, sourcesFile), sources, 0o644)
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

// installedPackages is the package list recorded by the build in dir
// (nil, nil when that build recorded none).
func installedPackages(dir string) (debian.Packages, error) {
	data, err := os.ReadFile(filepath.Join(dir, packagesFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return debian.ParseList(string(data))
}

// aptSources is the APT sources of the image built in dir.
func aptSources(dir string) ([]debian.Source, error) {
	data, err := os.ReadFile(filepath.Join(dir, sourcesFile))
	if err != nil {
		return nil, fmt.Errorf("the build in %s recorded no APT sources (%w): rebuild it", dir, err)
	}
	return debian.ParseSources(string(data))
}

// writeSBOM writes the SPDX SBOM of the root of t built in dir (its dpkg
// database) beside the outputs, created at the build's SOURCE_DATE_EPOCH:
// a rebuild of the same root gives the same SBOM (a published version
// never changes, its SBOM included).
func writeSBOM(ctx context.Context, a *appliance.Appliance, t Target, dir string, epoch int64) error {
	status, err := catFromSquashfs(ctx, filepath.Join(dir, rootfsFile), "var/lib/dpkg/status")
	if err != nil {
		return fmt.Errorf("SBOM: %w", err)
	}
	doc, err := sbom.FromDpkgStatus(bytes.NewReader(status), sbom.Subject{
		Name: t.variantName(), Version: a.Version, Arch: t.Arch, Distro: a.Base, Created: time.Unix(epoch, 0),
	})
	if err != nil {
		return fmt.Errorf("SBOM: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, sbom.FileName), doc, 0o644)
}
