package builder

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// squash makes a squashfs of the files given (path → content).
func squash(t *testing.T, files map[string]string) string {
	t.Helper()
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("mksquashfs not installed (squashfs-tools)")
	}
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "rootfs.squashfs")
	if msg, err := exec.Command("mksquashfs", root, out, "-noappend", "-quiet", "-no-progress").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, msg)
	}
	return out
}

var cleanRoot = map[string]string{
	"etc/machine-id":                  "",
	"etc/shadow":                      "root:*:20000:0:99999:7:::\nwww-data:*:20000:0:99999:7:::\nsystemd-network:!*:20000:::::1:\n",
	"var/log/nginx/access.log":        "",
	"var/lib/apt/lists/lock":          "",
	"var/cache/apt/archives/lock":     "",
	"root/.bashrc":                    "# fine\n",
	"usr/share/doc/x/changelog.gz":    "x",
	"var/lib/dpkg/status":             "Package: x\nStatus: install ok installed\nVersion: 1\n",
	"etc/ssh/sshd_config.d/empty.txt": "",
}

func TestCheckClean(t *testing.T) {
	if err := checkClean(context.Background(), squash(t, cleanRoot)); err != nil {
		t.Fatalf("a clean root: %v", err)
	}
	tests := []struct {
		name, path, content, want string
	}{
		{"machine id", "etc/machine-id", "0123456789abcdef0123456789abcdef\n", "/etc/machine-id: not empty"},
		{"dbus machine id", "var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n", "/var/lib/dbus/machine-id: dbus's id"},
		{"ssh host key", "etc/ssh/ssh_host_ed25519_key", "key", "/etc/ssh/ssh_host_ed25519_key: an SSH host key"},
		{"tls key", "etc/ssl/private/ssl-cert-snakeoil.key", "key", "/etc/ssl/private/ssl-cert-snakeoil.key: a TLS private key"},
		{"shell history", "root/.bash_history", "ls\n", "/root/.bash_history: shell history"},
		{"psql history", "home/app/.psql_history", "select 1;\n", "/home/app/.psql_history: shell history"},
		{"log", "var/log/dpkg.log", "installed\n", "/var/log/dpkg.log: a log file"},
		{"apt lists", "var/lib/apt/lists/deb.debian.org_debian_dists_trixie_InRelease", "x", "APT lists left"},
		{"apt cache", "var/cache/apt/archives/nginx_1.deb", "x", "APT cache left"},
		{"default password", "etc/shadow", "root:$y$j9T$abc$def:20000:0:99999:7:::\n", "/etc/shadow: root has a password set at build time"},
		{"empty password", "etc/shadow", "admin::20000:0:99999:7:::\n", "/etc/shadow: admin has an empty password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range cleanRoot {
				files[k] = v
			}
			files[tt.path] = tt.content
			err := checkClean(context.Background(), squash(t, files))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "the built root is not clean") {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}
