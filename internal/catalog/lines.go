package catalog

import (
	"strconv"
	"strings"

	"github.com/incus-appliance/registry/internal/osarch"
	"github.com/incus-appliance/registry/internal/semver"
)

// Version lines. SimpleStreams aliases belong to a product and follow its
// newest version, so an operator pinning a line (`incus launch
// REMOTE:nginx/1`) needs a product per line. An image published with a
// Line ("MAJOR.MINOR" of its appliance version) goes into the product
// NAME:MAJOR.MINOR:ARCH, and the aliases of the appliance's line products
// on that architecture are assigned together:
//   - every line product has NAME/MAJOR.MINOR;
//   - the newest minor line of each major has NAME/MAJOR;
//   - the newest line of all has NAME and the appliance's other aliases.
//
// Publishing 1.2.1 after 2.0.0 updates nginx/1.2 (and nginx/1 if 1.2 is
// the newest 1.x line) and leaves nginx and nginx/2 on 2.0.0.
//
// A non-default appliance variant has its own family, NAME/VARIANT:LINE:ARCH,
// whose aliases are the same with /VARIANT appended (nginx/1.2/cloud,
// nginx/1/cloud, nginx/cloud), as images.linuxcontainers.org names
// debian/12/cloud.
//
// An appliance published before it had lines has a plain product,
// NAME[/VARIANT]:ARCH. Its first line image takes the plain product's
// aliases over in the same catalog write (the line family gets them, the
// plain product keeps its versions, reachable by fingerprint): every
// alias names an image before that write and after it.

// LineOf returns the line ("MAJOR.MINOR") of a semantic version.
func LineOf(version string) (string, error) {
	v, err := semver.Parse(version)
	if err != nil {
		return "", err
	}
	return v.Line(), nil
}

// lineProductKey is the key of the product of a version line.
func lineProductKey(name, line, arch string) string {
	return name + ":" + line + ":" + osarch.Canonical(arch)
}

func lineNumbers(line string) (major, minor int) {
	a, b, _ := strings.Cut(line, ".")
	major, _ = strconv.Atoi(a)
	minor, _ = strconv.Atoi(b)
	return major, minor
}

// lineFamily returns the line products of appliance name's variant on
// arch, by key.
func (c *Catalog) lineFamily(name, variant, arch string) map[string]*Product {
	out := map[string]*Product{}
	for pk, p := range c.Products {
		if p.Line != "" && osarch.Canonical(p.Arch) == arch && pk == lineProductKey(variantAlias(name, variant), p.Line, arch) {
			out[pk] = p
		}
	}
	return out
}

// plainProduct returns the key of appliance name's variant's product on
// arch from before it had lines, "" when there is none.
func (c *Catalog) plainProduct(name, variant, arch string) string {
	pk := ProductKey(variantAlias(name, variant), arch)
	if p := c.Products[pk]; p != nil && p.Line == "" {
		return pk
	}
	return ""
}

// lineAliases assigns the aliases of the line products of appliance
// name's variant on arch, with the line plus counted as present and extra
// aliases added to the ones the family already has.
func (c *Catalog) lineAliases(name, variant, arch, plus string, extra []string) map[string][]string {
	lines := map[string]string{} // product key → line
	var extras []string
	for _, a := range extra {
		extras = append(extras, variantBase(a, variant))
	}
	family := c.lineFamily(name, variant, arch)
	if plain := c.plainProduct(name, variant, arch); plain != "" {
		// Its aliases move to the lines (the newest line's extras).
		for _, a := range c.Products[plain].AliasList() {
			if a = variantBase(a, variant); a != name && !strings.HasPrefix(a, name+"/") {
				extras = append(extras, a)
			}
		}
	}
	for pk, p := range family {
		lines[pk] = p.Line
		for _, a := range p.AliasList() {
			if a = variantBase(a, variant); a != name && !strings.HasPrefix(a, name+"/") {
				extras = append(extras, a)
			}
		}
	}
	if plus != "" {
		lines[lineProductKey(variantAlias(name, variant), plus, arch)] = plus
	}
	newest, newestOfMajor := "", map[int]string{}
	newer := func(a, b string) bool { // line a newer than line b
		if b == "" {
			return true
		}
		amaj, amin := lineNumbers(a)
		bmaj, bmin := lineNumbers(b)
		return amaj > bmaj || amaj == bmaj && amin > bmin
	}
	for _, l := range lines {
		if newer(l, newest) {
			newest = l
		}
		maj, _ := lineNumbers(l)
		if newer(l, newestOfMajor[maj]) {
			newestOfMajor[maj] = l
		}
	}
	out := map[string][]string{}
	for pk, l := range lines {
		maj, _ := lineNumbers(l)
		as := []string{name + "/" + l}
		if newestOfMajor[maj] == l {
			as = append(as, name+"/"+strconv.Itoa(maj))
		}
		if l == newest {
			as = append(as, name)
			as = append(as, extras...)
		}
		for i, a := range as {
			as[i] = variantAlias(a, variant)
		}
		out[pk] = sortedSet(as)
	}
	return out
}

// variantBase is alias a of variant v without its /VARIANT ending.
func variantBase(a, v string) string {
	if IsDefaultVariant(v) {
		return a
	}
	return strings.TrimSuffix(a, "/"+v)
}

// checkLineAliases refuses an assignment taking an alias that a product
// outside the family, and other than its plain product, owns.
func (c *Catalog) checkLineAliases(name, variant, arch string, assign map[string][]string) error {
	fam := c.lineFamily(name, variant, arch)
	plain := c.plainProduct(name, variant, arch)
	for pk, as := range assign {
		for _, a := range as {
			if err := ValidateAlias(a); err != nil {
				return err
			}
			if owner := c.AliasOwner(a, arch, pk); owner != "" && fam[owner] == nil && owner != plain {
				return &AliasOwnedError{Alias: a, Arch: arch, Owner: owner}
			}
		}
	}
	return nil
}

// relinkLines reassigns the aliases of the line products of appliance
// name's variant on arch after a line product was deleted; extra are the
// deleted product's own aliases (the appliance's other aliases move to the
// newest line).
func (c *Catalog) relinkLines(name, variant, arch string, extra []string) {
	for pk, as := range c.lineAliases(name, variant, arch, "", extra) {
		c.Products[pk].setAliases(variantAlias(name, variant), as)
	}
}
