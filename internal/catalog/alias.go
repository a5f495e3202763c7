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

// HasAlias reports whether the product lists alias a.
func (p *Product) HasAlias(a string) bool {
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
		if pk != except && osarch.Canonical(p.Arch) == want && p.HasAlias(a) {
			return pk
		}
	}
	return ""
}

// AddAliases adds aliases to an existing product, refusing any alias that
// another product on the same architecture owns. It returns the aliases
// that were new. On error the catalog is unchanged.
func (c *Catalog) AddAliases(productKey string, aliases []string) ([]string, error) {
	p := c.Products[productKey]
	if p == nil {
		return nil, fmt.Errorf("no product %q in the catalog", productKey)
	}
	var added []string
	for _, a := range sortedSet(aliases) {
		if err := ValidateAlias(a); err != nil {
			return nil, err
		}
		if owner := c.AliasOwner(a, p.Arch, productKey); owner != "" {
			return nil, fmt.Errorf("alias %q is already owned by product %q: remove it from that product first or choose another alias", a, owner)
		}
		if !p.HasAlias(a) {
			added = append(added, a)
		}
	}
	if len(added) > 0 {
		main := ""
		if l := p.AliasList(); len(l) > 0 {
			main = l[0]
		}
		p.setAliases(main, append(p.AliasList(), added...))
	}
	return added, nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func sortedSet(in []string) []string {
	out := slices.Clone(in)
	sort.Strings(out)
	return slices.Compact(out)
}
