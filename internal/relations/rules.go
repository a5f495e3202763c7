package relations

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/incus-appliance/registry/internal/semver"
)

// The rules that keep a registry installable, the way apt keeps an
// archive installable: every published consumer has, for each of its
// single relations, a published image on its architecture that provides
// the interface in a version the relation's constraint allows.
//
//   - A consumer counts when an alias launches it: the newest version of
//     its product (older versions are a product's history, reachable by
//     fingerprint only).
//   - A provider counts in every version still published: removing an
//     older version can take away the last one a consumer allows.
//   - A multiple relation (any number of providers, none included) needs
//     nothing published: no provider is a valid wiring of it.
//
// Publishing an image whose relation nothing satisfies is refused
// (UnmetError); removing or pruning what a consumer needs is refused
// unless forced (BreakError, Broken says what breaks).

// Image is one published image of an appliance as the rules see it.
type Image struct {
	// Appliance is the appliance's name, Variant its variant ("" for the
	// default one), Arch the canonical architecture.
	Appliance, Variant, Arch string
	// Version is the appliance's version ("" when the catalog does not
	// say: it then satisfies no constraint).
	Version  string
	Provides []Provide
	Requires []Require
	// Launchable: the newest version of its product, the one its aliases
	// launch.
	Launchable bool
	// Product and Key (the version key) place it in the catalog;
	// Fingerprint is its image's.
	Product, Key, Fingerprint string
}

// String names the image: "miniflux 1.0.0 (miniflux:1.0:amd64)".
func (im Image) String() string {
	v := im.Version
	if v == "" {
		v = "(version unknown)"
	}
	return fmt.Sprintf("%s %s (%s)", im.Appliance, v, im.Product)
}

// Satisfies reports whether im can be r's provider: it provides r's
// interface, in a version r's constraint allows when r has one.
func (im Image) Satisfies(r Require) bool {
	if !slices.ContainsFunc(im.Provides, func(p Provide) bool { return p.Interface == r.Interface }) {
		return false
	}
	c, ok, err := r.Constraint()
	if err != nil {
		return false
	}
	if !ok {
		return true
	}
	v, err := semver.Parse(im.Version)
	return err == nil && c.Allows(v)
}

// Providers returns the images of set on arch that satisfy r, newest
// appliance version first, then by appliance name, variant and version
// key (newest first): the first is the one a stack picks.
func Providers(set []Image, r Require, arch string) []Image {
	var out []Image
	for _, im := range set {
		if im.Arch == arch && im.Satisfies(r) {
			out = append(out, im)
		}
	}
	slices.SortStableFunc(out, func(a, b Image) int {
		return cmp.Or(-compareVersions(a.Version, b.Version), strings.Compare(a.Appliance, b.Appliance),
			strings.Compare(a.Variant, b.Variant), -strings.Compare(a.Key, b.Key))
	})
	return out
}

// compareVersions orders appliance versions, an unknown or unreadable
// one first.
func compareVersions(a, b string) int {
	va, errA := semver.Parse(a)
	vb, errB := semver.Parse(b)
	switch {
	case errA != nil && errB != nil:
		return strings.Compare(a, b)
	case errA != nil:
		return -1
	case errB != nil:
		return 1
	}
	return semver.Compare(va, vb)
}

// Unmet is a published consumer's relation that no published image
// satisfies.
type Unmet struct {
	Consumer Image
	Relation Require
}

func (u Unmet) String() string {
	return fmt.Sprintf("%s: relation %s: no published appliance provides %s on %s", u.Consumer, u.Relation.Name, u.Relation.Wants(), u.Consumer.Arch)
}

func (u Unmet) key() string {
	return u.Consumer.Product + "\x00" + u.Consumer.Key + "\x00" + u.Relation.Name
}

// Unsatisfied lists, for each launchable consumer of set, the single
// relations no image of set satisfies on its architecture, in set's
// order.
func Unsatisfied(set []Image) []Unmet {
	var out []Unmet
	for _, im := range set {
		if !im.Launchable {
			continue
		}
		for _, r := range im.Requires {
			if !r.Multiple && len(Providers(set, r, im.Arch)) == 0 {
				out = append(out, Unmet{Consumer: im, Relation: r})
			}
		}
	}
	return out
}

// Broken lists what after leaves unsatisfied that before did not: what a
// change from before to after breaks (an unsatisfied relation already
// there, e.g. from another tool's edit, is not the change's doing).
func Broken(before, after []Image) []Unmet {
	was := map[string]bool{}
	for _, u := range Unsatisfied(before) {
		was[u.key()] = true
	}
	var out []Unmet
	for _, u := range Unsatisfied(after) {
		if !was[u.key()] {
			out = append(out, u)
		}
	}
	return out
}

// UnmetError refuses to publish an image with a relation no published
// image satisfies.
type UnmetError struct {
	Unmet []Unmet
}

func (e *UnmetError) Error() string {
	var parts []string
	for _, u := range e.Unmet {
		parts = append(parts, fmt.Sprintf("relation %s needs %s, which no published appliance provides on %s", u.Relation.Name, u.Relation.Wants(), u.Consumer.Arch))
	}
	return fmt.Sprintf("%s %s: %s (publish a provider first)", e.Unmet[0].Consumer.Appliance, e.Unmet[0].Consumer.Version, strings.Join(parts, "; "))
}

// BreakError refuses a change (remove, prune) that takes away the last
// image satisfying published consumers' relations.
type BreakError struct {
	// Change names it: "remove postgresql", "prune".
	Change string
	Broken []Unmet
}

func (e *BreakError) Error() string {
	return fmt.Sprintf("%s would leave %s (pass --force to do it anyway)", e.Change, Describe(e.Broken))
}

// Describe says what broken relations lose: "miniflux 1.0.0
// (miniflux:1.0:amd64) without a provider for relation db (postgresql
// >=1.1, <2); ...".
func Describe(broken []Unmet) string {
	var parts []string
	for _, u := range broken {
		parts = append(parts, fmt.Sprintf("%s without a provider for relation %s", u.Consumer, u.Relation))
	}
	return strings.Join(parts, "; ")
}
