package catalog

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/incus-appliance/registry/internal/osarch"

	"github.com/incus-appliance/registry/internal/digest"
)

// MaxAliasLen bounds alias length.
const MaxAliasLen = 128

// ValidateAlias checks that an alias can be written into the comma-joined
// aliases string and resolved by Incus: letters, digits and ". _ + - /",
// starting with a letter or digit, no empty segment, not ending in
// "/<arch>" (Incus generates "<alias>/<arch>" for every alias itself), and
// not 1 to 64 hex digits (Incus would read it as a fingerprint prefix).
func ValidateAlias(a string) error {
	if a == "" {
		return fmt.Errorf("empty alias")
	}
	if len(a) > MaxAliasLen {
		return fmt.Errorf("alias %q is longer than %d characters", a, MaxAliasLen)
	}
	if !isAlnum(a[0]) {
		return fmt.Errorf("alias %q must start with a letter or digit", a)
	}
	for _, c := range []byte(a) {
		if !isAlnum(c) && !strings.ContainsRune("._+-/", rune(c)) {
			return fmt.Errorf("alias %q contains %q: use letters, digits and . _ + - /", a, c)
		}
	}
	segs := strings.Split(a, "/")
	for _, s := range segs {
		if s == "" {
			return fmt.Errorf("alias %q has an empty segment", a)
		}
	}
	if last := segs[len(segs)-1]; len(segs) > 1 && osarch.KnownToClient(last) {
		return fmt.Errorf("alias %q ends in an architecture name: Incus generates \"<alias>/<arch>\" for every alias itself, so %q would collide with the form it makes for alias %q", a, a, strings.Join(segs[:len(segs)-1], "/"))
	}
	if isFingerprintPrefix(a) {
		return fmt.Errorf("alias %q is all hex digits: Incus would read it as a fingerprint prefix, so it would shadow (or be shadowed by) the image whose fingerprint starts with %s; add a letter outside a-f", a, strings.ToLower(a))
	}
	return nil
}

// isFingerprintPrefix reports whether s (1 to 64 characters) is made of hex
// digits only, i.e. could be read as (a prefix of) an image fingerprint.
func isFingerprintPrefix(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && digest.IsLowerHex(strings.ToLower(s))
}

// ValidateName checks an appliance name, which becomes the product's main
// alias: lowercase letters, digits and '-', starting with a letter.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("empty appliance name")
	}
	if len(name) > 63 {
		return fmt.Errorf("appliance name %q is longer than 63 characters", name)
	}
	if name[0] < 'a' || name[0] > 'z' {
		return fmt.Errorf("appliance name %q must start with a lowercase letter", name)
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("appliance name %q contains %q: use lowercase letters, digits and '-'", name, c)
		}
	}
	return nil
}

// AliasList splits a product's comma-joined aliases string.
func (p *Product) AliasList() []string {
	if p.Aliases == "" {
		return nil
	}
	return strings.Split(p.Aliases, ",")
}

// hasAlias reports whether the product lists alias a.
func (p *Product) hasAlias(a string) bool {
	return slices.Contains(p.AliasList(), a)
}

// setAliases writes the aliases string: main first (when present), the
// others sorted, no duplicates.
func (p *Product) setAliases(main string, aliases []string) {
	var rest []string
	for _, a := range sortedSet(aliases) {
		if a != main {
			rest = append(rest, a)
		}
	}
	if main != "" && slices.Contains(aliases, main) {
		rest = append([]string{main}, rest...)
	}
	p.Aliases = strings.Join(rest, ",")
}

// AliasOwner returns the key of the product on arch (any spelling) that
// lists alias a, excluding product except, or "" when none does.
func (c *Catalog) AliasOwner(a, arch, except string) string {
	want := osarch.Canonical(arch)
	for _, pk := range c.ProductKeys() {
		p := c.Products[pk]
		if pk != except && osarch.Canonical(p.Arch) == want && p.hasAlias(a) {
			return pk
		}
	}
	return ""
}

// AliasOwnedError refuses an alias that another product on the same
// architecture owns.
type AliasOwnedError struct {
	Alias, Arch, Owner string
	// Source, when set, is the product of another catalog (a mirror's
	// source) that comes with the alias.
	Source string
}

func (e *AliasOwnedError) Error() string {
	if e.Source != "" {
		return fmt.Sprintf("alias clash: %q of source product %s is already owned by product %s on %s: filter one of them out", e.Alias, e.Source, e.Owner, e.Arch)
	}
	return fmt.Sprintf("alias %q is already owned by product %q: remove it from that product first or choose another alias", e.Alias, e.Owner)
}

// checkAliasOwner refuses alias a on arch when a product other than
// except owns it.
func (c *Catalog) checkAliasOwner(a, arch, except string) error {
	if owner := c.AliasOwner(a, arch, except); owner != "" {
		return &AliasOwnedError{Alias: a, Arch: osarch.Canonical(arch), Owner: owner}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func sortedSet(in []string) []string {
	out := slices.Clone(in)
	sort.Strings(out)
	return slices.Compact(out)
}
