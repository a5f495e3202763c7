package semver

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Constraint is a version constraint: comparisons joined by commas, all
// of which a version must satisfy, e.g. ">=1.1, <2". Each comparison is an
// operator (>=, <=, >, <, =, !=) and a version of one to three numbers;
// missing numbers are zeros (<2 is <2.0.0, =1.2 is =1.2.0). A
// pre-release satisfies no constraint: a constraint names releases.
type Constraint struct {
	terms []term
	text  string
}

type term struct {
	op string
	v  Version
}

var termRe = regexp.MustCompile(`^(>=|<=|!=|>|<|=)\s*(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?$`)

// ParseConstraint reads a constraint. The empty string is not one (an
// absent constraint is the caller's to treat as "any version").
func ParseConstraint(s string) (Constraint, error) {
	c := Constraint{text: s}
	if strings.TrimSpace(s) == "" {
		return c, fmt.Errorf("empty version constraint: give comparisons such as \">=1.1, <2\"")
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		m := termRe.FindStringSubmatch(part)
		if m == nil {
			return Constraint{}, fmt.Errorf("version constraint %q: %q is not OPERATOR VERSION (operators >=, <=, >, <, =, !=; a version of 1 to 3 numbers, e.g. >=1.1)", s, part)
		}
		var nums [3]int
		for i, n := range m[2:] {
			if n != "" {
				var err error
				if nums[i], err = strconv.Atoi(n); err != nil {
					return Constraint{}, fmt.Errorf("version constraint %q: %w", s, err)
				}
			}
		}
		c.terms = append(c.terms, term{op: m[1], v: Version{Major: nums[0], Minor: nums[1], Patch: nums[2]}})
	}
	if !c.satisfiable() {
		return Constraint{}, fmt.Errorf("version constraint %q: no version satisfies it", s)
	}
	return c, nil
}

// Allows reports whether v is a release that satisfies every comparison.
func (c Constraint) Allows(v Version) bool {
	if v.Pre != "" {
		return false
	}
	for _, t := range c.terms {
		cmp := Compare(v, t.v)
		ok := false
		switch t.op {
		case ">=":
			ok = cmp >= 0
		case "<=":
			ok = cmp <= 0
		case ">":
			ok = cmp > 0
		case "<":
			ok = cmp < 0
		case "=":
			ok = cmp == 0
		case "!=":
			ok = cmp != 0
		}
		if !ok {
			return false
		}
	}
	return true
}

// satisfiable reports whether some release satisfies c: one at, just
// above or just below one of its bounds does if any does.
func (c Constraint) satisfiable() bool {
	const many = 1 << 30
	candidates := []Version{{}}
	for _, t := range c.terms {
		v := t.v
		candidates = append(candidates, v, Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch + 1})
		switch {
		case v.Patch > 0:
			candidates = append(candidates, Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch - 1})
		case v.Minor > 0:
			candidates = append(candidates, Version{Major: v.Major, Minor: v.Minor - 1, Patch: many})
		case v.Major > 0:
			candidates = append(candidates, Version{Major: v.Major - 1, Minor: many, Patch: many})
		}
	}
	for _, v := range candidates {
		if c.Allows(v) {
			return true
		}
	}
	return false
}

// String is the constraint as written.
func (c Constraint) String() string { return c.text }
