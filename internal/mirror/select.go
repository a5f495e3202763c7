package mirror

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/incus-appliance/registry/internal/osarch"

	"github.com/incus-appliance/registry/internal/catalog"
)

// Filter keeps the products whose field matches: arch, os, release and
// variant compare exactly (arch in any spelling), product is a glob over
// the product key (path.Match syntax).
type Filter struct {
	Key, Value string
}

// FilterKeys are the keys a Filter may use.
var FilterKeys = []string{"arch", "os", "release", "variant", "product"}

// ParseFilter reads KEY=VALUE.
func ParseFilter(s string) (Filter, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || v == "" || !slices.Contains(FilterKeys, k) {
		return Filter{}, fmt.Errorf("filter %q: want KEY=VALUE with KEY one of %s", s, strings.Join(FilterKeys, ", "))
	}
	if k == "product" {
		if _, err := path.Match(v, ""); err != nil {
			return Filter{}, fmt.Errorf("filter %q: bad glob: %v", s, err)
		}
	}
	if k == "arch" {
		a, err := osarch.Normalize(v)
		if err != nil {
			return Filter{}, fmt.Errorf("filter %q: %v", s, err)
		}
		v = a
	}
	return Filter{k, v}, nil
}

func (f Filter) match(pk string, p *catalog.Product) bool {
	switch f.Key {
	case "arch":
		a, err := osarch.Normalize(p.Arch)
		return err == nil && a == f.Value
	case "os":
		return p.OS == f.Value
	case "release":
		return p.Release == f.Value
	case "variant":
		return p.Variant == f.Value
	case "product":
		ok, _ := path.Match(f.Value, pk)
		return ok
	}
	return false
}

// matches applies filters: values of one key are alternatives, different
// keys must all match.
func matches(filters []Filter, pk string, p *catalog.Product) bool {
	byKey := map[string][]Filter{}
	for _, f := range filters {
		byKey[f.Key] = append(byKey[f.Key], f)
	}
	for _, fs := range byKey {
		if !slices.ContainsFunc(fs, func(f Filter) bool { return f.match(pk, p) }) {
			return false
		}
	}
	return true
}

// Select returns the versions to copy: the products the filters keep, the
// newest keep versions of each (all when keep is 0), oldest first, each
// with its VM delta anchor, without the delta items whose base version is
// not selected. What is copied is
// therefore exactly what the catalog written will list.
func Select(c *catalog.Catalog, filters []Filter, keep int) []catalog.VersionCopy {
	var out []catalog.VersionCopy
	for _, vc := range c.Copies() {
		p := c.Products[vc.Product]
		if !matches(filters, vc.Product, p) {
			continue
		}
		vks := p.VersionKeys()
		if keep > 0 && len(vks) > keep {
			vks = vks[len(vks)-keep:]
		}
		if !slices.Contains(vks, p.VersionOf(vc.Version)) { // a VM delta anchor goes with its version
			continue
		}
		items := map[string]catalog.Item{}
		for ik, it := range vc.Items {
			if it.DeltaBase == "" || slices.Contains(vks, p.VersionOf(it.DeltaBase)) {
				items[ik] = it
			}
		}
		vc.Items = items
		out = append(out, vc)
	}
	return out
}
