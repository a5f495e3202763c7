package catalog

import (
	"fmt"
	"sort"
	"strings"
)

// archNames maps every spelling Incus (6.0) and LXD (5.0) accept onto the
// Debian-style name this registry writes into catalogs. A product whose
// "arch" the client does not know silently disappears, so anything outside
// this table is refused.
var archNames = map[string]string{
	"amd64": "amd64", "x86_64": "amd64",
	"arm64": "arm64", "aarch64": "arm64",
	"armhf": "armhf", "armv7l": "armhf", "armv7": "armhf",
	"armel": "armel", "armv6l": "armel",
	"i386": "i386", "i686": "i386",
	"ppc64el": "ppc64el", "ppc64le": "ppc64el",
	"riscv64": "riscv64",
	"s390x":   "s390x",
}

// NormalizeArch returns the canonical (Debian-style) name of an
// architecture given in any spelling Incus knows, e.g. "x86_64" → "amd64".
func NormalizeArch(arch string) (string, error) {
	if n, ok := archNames[strings.ToLower(strings.TrimSpace(arch))]; ok {
		return n, nil
	}
	return "", fmt.Errorf("unknown architecture %q (Incus knows: %s)", arch, strings.Join(KnownArchs(), ", "))
}

// KnownArchs lists the canonical architecture names, sorted.
func KnownArchs() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range archNames {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// isArchName reports whether s is any known spelling of an architecture.
func isArchName(s string) bool {
	_, ok := archNames[strings.ToLower(s)]
	return ok
}
