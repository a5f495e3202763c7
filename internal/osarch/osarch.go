// Package osarch is the one table of architecture names: the canonical
// (Debian-style) name this registry writes into catalogs, every spelling
// Incus (6.0) and LXD (5.0) accept for it, the name distrobuilder's
// image.architecture takes, and the names the Incus client knows beyond
// those (shared/osarch), which an alias must not end in.
//
// A product whose "arch" the client does not know silently disappears, so
// a name outside the table is refused by Normalize.
package osarch

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
)

// arch is one row: the canonical name, the other spellings accepted for
// it, and distrobuilder's name (its image.architecture, mapped to Debian's
// by architecture_map).
type arch struct {
	name      string
	spellings []string
	kernel    string
}

var table = []arch{
	{"amd64", []string{"x86_64"}, "x86_64"},
	{"arm64", []string{"aarch64"}, "aarch64"},
	{"armhf", []string{"armv7l", "armv7"}, "armv7l"},
	{"armel", []string{"armv6l"}, "armv6l"},
	{"i386", []string{"i686"}, "i686"},
	{"ppc64el", []string{"ppc64le"}, "ppc64le"},
	{"riscv64", nil, "riscv64"},
	{"s390x", nil, "s390x"},
}

// clientOnly are the architecture names and aliases the Incus client knows
// (shared/osarch) that this registry does not accept for a product of its
// own: a product written by another tool may use any of them, and the
// client turns each alias A into "A/<that name>".
var clientOnly = []string{
	"armv8l", "ppc", "ppc64", "mips", "mips64", "riscv32", "loongarch64",
	"i586", "386", "x86", "generic_32", "generic_64",
	"x86_64_v1", "x86_64_v2", "x86_64_v3", "x86_64_v4",
	"arm", "armhfp", "armv7a_hardfp", "armv7a_vfpv3_hardfp", "arm64_generic",
	"powerpc", "powerpc64", "mipsel", "mipsle", "mips64el", "mips64le", "loong64",
}

func find(s string) *arch {
	s = strings.ToLower(strings.TrimSpace(s))
	for i := range table {
		if table[i].name == s || slices.Contains(table[i].spellings, s) {
			return &table[i]
		}
	}
	return nil
}

// Normalize returns the canonical name of an architecture given in any
// spelling Incus knows, e.g. "x86_64" → "amd64".
func Normalize(s string) (string, error) {
	if a := find(s); a != nil {
		return a.name, nil
	}
	return "", fmt.Errorf("unknown architecture %q (Incus knows: %s)", s, strings.Join(names(), ", "))
}

// Canonical is Normalize for comparisons: an unknown name is returned as it
// is, so that it still compares equal to itself.
func Canonical(s string) string {
	if a := find(s); a != nil {
		return a.name
	}
	return s
}

// Known reports whether s is a spelling of an architecture the registry
// accepts.
func Known(s string) bool { return find(s) != nil }

// KnownToClient reports whether s names an architecture for the Incus
// client or for this registry.
func KnownToClient(s string) bool {
	return Known(s) || slices.Contains(clientOnly, strings.ToLower(s))
}

// Kernel returns distrobuilder's name for the canonical architecture name
// (image.architecture), false when it has none.
func Kernel(name string) (string, bool) {
	for _, a := range table {
		if a.name == name {
			return a.kernel, true
		}
	}
	return "", false
}

// Host is the canonical name of the architecture this program runs on.
func Host() string {
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	}
	return Canonical(runtime.GOARCH)
}

// names lists the canonical names, sorted.
func names() []string {
	out := make([]string, len(table))
	for i, a := range table {
		out[i] = a.name
	}
	slices.Sort(out)
	return out
}
