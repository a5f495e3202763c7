package catalog

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
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

var lineRe = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

// LineOf returns the line ("MAJOR.MINOR") of a semantic version.
func LineOf(version string) (string, error) {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 3 || !lineRe.MatchString(parts[0]+"."+parts[1]) {
		return "", fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", version)
	}
	return parts[0] + "." + parts[1], nil
}

// LineProductKey is the key of the product of a version line.
func LineProductKey(name, line, arch string) string {
	return name + ":" + line + ":" + canonicalArch(arch)
}

// productKey is where img goes.
func (img Image) productKey(arch string) string {
	if img.Line != "" {
		return LineProductKey(img.Name, img.Line, arch)
	}
	return ProductKey(img.Name, arch)
}

func lineNumbers(line string) (major, minor int) {
	a, b, _ := strings.Cut(line, ".")
	major, _ = strconv.Atoi(a)
	minor, _ = strconv.Atoi(b)
	return major, minor
}

// lineFamily returns the line products of appliance name on arch, by key.
func (c *Catalog) lineFamily(name, arch string) map[string]*Product {
	out := map[string]*Product{}
	for pk, p := range c.Products {
		if p.Line != "" && canonicalArch(p.Arch) == arch && pk == LineProductKey(name, p.Line, arch) {
			out[pk] = p
		}
	}
	return out
}

// lineAliases assigns the aliases of appliance name's line products on
// arch, with the line plus counted as present and extra aliases added to
// the ones the family already has.
func (c *Catalog) lineAliases(name, arch, plus string, extra []string) map[string][]string {
	lines := map[string]string{} // product key → line
	extras := slices.Clone(extra)
	for pk, p := range c.lineFamily(name, arch) {
		lines[pk] = p.Line
		for _, a := range p.AliasList() {
			if a != name && !strings.HasPrefix(a, name+"/") {
				extras = append(extras, a)
			}
		}
	}
	if plus != "" {
		lines[LineProductKey(name, plus, arch)] = plus
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
		out[pk] = sortedSet(as)
	}
	return out
}

// checkLineAliases refuses an assignment taking an alias that a product
// outside the family owns.
func (c *Catalog) checkLineAliases(name, arch string, assign map[string][]string) error {
	fam := c.lineFamily(name, arch)
	for pk, as := range assign {
		for _, a := range as {
			if err := ValidateAlias(a); err != nil {
				return err
			}
			if owner := c.AliasOwner(a, arch, pk); owner != "" && fam[owner] == nil {
				return fmt.Errorf("alias %q is already owned by product %q: remove it from that product first or choose another alias", a, owner)
			}
		}
	}
	return nil
}

// relinkLines reassigns the aliases of appliance name's line products on
// arch after a line product was deleted; extra are the deleted product's
// own aliases (the appliance's other aliases move to the newest line).
func (c *Catalog) relinkLines(name, arch string, extra []string) {
	for pk, as := range c.lineAliases(name, arch, "", extra) {
		c.Products[pk].setAliases(name, as)
	}
}

// ProductKey is the key of the product img goes into.
func (img Image) ProductKey() string {
	return img.productKey(canonicalArch(img.Arch))
}
