package relations

import (
	"fmt"
	"strconv"
	"strings"
)

// An appliance's relations are written into its catalog product's custom
// metadata, into each catalog version (what the rules read), and into its
// image's metadata.yaml properties (what `incus image info` shows of an
// imported image), all as two strings under the keys Provides and
// Requires (custom values and image properties are strings):
//
//	provides: postgresql:5432           INTERFACE[:PORT], comma-separated
//	requires: db=postgresql >=1.1, <2; targets=prometheus-scrape (multiple)
//
// requires lists NAME=INTERFACE[ CONSTRAINT][ (multiple)], separated by
// "; " (a constraint has commas of its own).
const (
	Provides = "provides"
	Requires = "requires"
)

// multipleMark ends a multiple relation in Requires.
const multipleMark = " (multiple)"

// FormatProvides writes provides as the Provides string ("" for none).
func FormatProvides(ps []Provide) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Interface
		if p.Port != 0 {
			out[i] += ":" + strconv.Itoa(p.Port)
		}
	}
	return strings.Join(out, ",")
}

// ParseProvides reads a Provides string.
func ParseProvides(s string) ([]Provide, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Provide
	for _, part := range strings.Split(s, ",") {
		iface, port, hasPort := strings.Cut(strings.TrimSpace(part), ":")
		p := Provide{Interface: iface}
		if err := CheckName("interface", iface); err != nil {
			return nil, fmt.Errorf("%s %q: %w", Provides, s, err)
		}
		if hasPort {
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("%s %q: %q is not a TCP port", Provides, s, port)
			}
			p.Port = n
		}
		out = append(out, p)
	}
	return out, nil
}

// FormatRequires writes requires as the Requires string ("" for none).
func FormatRequires(rs []Require) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name + "=" + r.Wants()
		if r.Multiple {
			out[i] += multipleMark
		}
	}
	return strings.Join(out, "; ")
}

// ParseRequires reads a Requires string; each constraint must parse.
func ParseRequires(s string) ([]Require, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Require
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		name, rest, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%s %q: %q is not NAME=INTERFACE[ CONSTRAINT][ (multiple)]", Requires, s, part)
		}
		var r Require
		rest, r.Multiple = strings.CutSuffix(rest, multipleMark)
		iface, version, _ := strings.Cut(strings.TrimSpace(rest), " ")
		r.Name, r.Interface, r.Version = name, iface, strings.TrimSpace(version)
		err := CheckName("relation", r.Name)
		if err == nil {
			err = CheckName("interface", r.Interface)
		}
		if err == nil {
			_, _, err = r.Constraint()
		}
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", Requires, s, err)
		}
		out = append(out, r)
	}
	return out, nil
}
