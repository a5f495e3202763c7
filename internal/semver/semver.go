// Package semver reads appliance versions (semantic versions,
// MAJOR.MINOR.PATCH with an optional pre-release and build) and the
// version constraints one appliance puts on another (">=1.0, <2"),
// and decides whether a version satisfies a constraint. Pure: no I/O.
package semver

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Version is a parsed semantic version.
type Version struct {
	Major, Minor, Patch int
	// Pre is the pre-release ("rc.1" of 1.0.0-rc.1); empty for a release.
	Pre string
	// Build is the build metadata, ignored by comparisons.
	Build string
}

var versionRe = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$`)

// Parse reads MAJOR.MINOR.PATCH[-PRE][+BUILD].
func Parse(s string) (Version, error) {
	m := versionRe.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("%q is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.0)", s)
	}
	var v Version
	var err error
	for i, p := range []*int{&v.Major, &v.Minor, &v.Patch} {
		if *p, err = strconv.Atoi(m[i+1]); err != nil {
			return Version{}, fmt.Errorf("%q: %w", s, err)
		}
	}
	v.Pre, v.Build = m[4], m[5]
	return v, nil
}

func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Pre != "" {
		s += "-" + v.Pre
	}
	if v.Build != "" {
		s += "+" + v.Build
	}
	return s
}

// Line is the version's line, "MAJOR.MINOR": the product its image goes
// into when the appliance publishes version lines.
func (v Version) Line() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Compare orders versions by semantic version precedence: -1, 0 or 1.
// A pre-release comes before its release; build metadata is ignored.
func Compare(a, b Version) int {
	for _, d := range [][2]int{{a.Major, b.Major}, {a.Minor, b.Minor}, {a.Patch, b.Patch}} {
		if c := cmpInt(d[0], d[1]); c != 0 {
			return c
		}
	}
	switch {
	case a.Pre == b.Pre:
		return 0
	case a.Pre == "":
		return 1
	case b.Pre == "":
		return -1
	}
	return comparePre(strings.Split(a.Pre, "."), strings.Split(b.Pre, "."))
}

// comparePre compares dot-separated pre-release identifiers: numeric ones
// numerically and before alphanumeric ones, a shorter list first when one
// is a prefix of the other.
func comparePre(a, b []string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		na, errA := strconv.Atoi(a[i])
		nb, errB := strconv.Atoi(b[i])
		switch {
		case errA == nil && errB == nil:
			if c := cmpInt(na, nb); c != 0 {
				return c
			}
		case errA == nil:
			return -1
		case errB == nil:
			return 1
		default:
			if c := strings.Compare(a[i], b[i]); c != 0 {
				return c
			}
		}
	}
	return cmpInt(len(a), len(b))
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
