package image

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/incus-appliance/registry/internal/osarch"
	"github.com/incus-appliance/registry/internal/yamlnode"
)

// requiredHint names what incus-simplestreams requires of metadata.yaml.
const requiredHint = "incus-simplestreams requires architecture, creation_date and properties os, release, variant and description"

// parseMetadata decodes and validates metadata.yaml. Errors start with
// "metadata.yaml: ".
func parseMetadata(data []byte) (Metadata, error) {
	md, err := decodeMetadata(data)
	if err != nil {
		return Metadata{}, fmt.Errorf("metadata.yaml: %w", err)
	}
	return md, nil
}

func decodeMetadata(data []byte) (Metadata, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Metadata{}, fmt.Errorf("not valid YAML (%s); fix the syntax", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	top := &yaml.Node{Kind: yaml.MappingNode}
	if len(doc.Content) > 0 {
		top = resolve(doc.Content[0])
	}
	if top.Kind != yaml.MappingNode && !isNull(top) {
		return Metadata{}, fmt.Errorf("must be a mapping of fields, not %s; %s", yamlnode.Kind(top), requiredHint)
	}
	fields, err := mapping(top, "")
	if err != nil {
		return Metadata{}, err
	}
	md := Metadata{Properties: map[string]string{}}
	if md.Architecture, err = scalar(fields["architecture"], "architecture"); err != nil {
		return Metadata{}, err
	}
	if md.CreationDate, err = unixTime(fields["creation_date"], "creation_date", false); err != nil {
		return Metadata{}, err
	}
	if md.ExpiryDate, err = unixTime(fields["expiry_date"], "expiry_date", true); err != nil {
		return Metadata{}, err
	}
	if p := fields["properties"]; p != nil && !isNull(p) {
		if p.Kind != yaml.MappingNode {
			return Metadata{}, fmt.Errorf(`"properties" must be a mapping of names to strings, not %s; %s`, yamlnode.Kind(p), requiredHint)
		}
		props, err := mapping(p, "properties.")
		if err != nil {
			return Metadata{}, err
		}
		for k, v := range props {
			if md.Properties[k], err = scalar(v, "properties."+k); err != nil {
				return Metadata{}, err
			}
		}
	}
	md.OS, md.Release, md.Variant = md.Properties["os"], md.Properties["release"], md.Properties["variant"]
	md.Description, md.Name, md.Serial = md.Properties["description"], md.Properties["name"], md.Properties["serial"]
	if err := checkRequired(&md); err != nil {
		return Metadata{}, err
	}
	return md, checkArch(&md)
}

// checkRequired reports every missing required field at once.
func checkRequired(md *Metadata) error {
	var missing []string
	add := func(name string, absent bool) {
		if absent {
			missing = append(missing, strconv.Quote(name))
		}
	}
	add("architecture", strings.TrimSpace(md.Architecture) == "")
	add("creation_date", md.CreationDate.IsZero())
	add("properties.os", strings.TrimSpace(md.OS) == "")
	add("properties.release", strings.TrimSpace(md.Release) == "")
	add("properties.variant", strings.TrimSpace(md.Variant) == "")
	add("properties.description", strings.TrimSpace(md.Description) == "")
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("missing required field %s; add it (%s)", missing[0], requiredHint)
	}
	return fmt.Errorf("missing required fields %s; add them (%s)", strings.Join(missing, ", "), requiredHint)
}

// checkArch normalizes the architecture and checks properties.architecture.
func checkArch(md *Metadata) error {
	a, err := osarch.Normalize(md.Architecture)
	if err != nil {
		return fmt.Errorf("architecture: %w; use one of those names", err)
	}
	md.Arch = a
	pa, ok := md.Properties["architecture"]
	if !ok || strings.TrimSpace(pa) == "" {
		return nil
	}
	n, err := osarch.Normalize(pa)
	if err != nil {
		return fmt.Errorf("properties.architecture: %w; use one of those names or leave it out", err)
	}
	if n != a {
		return fmt.Errorf("architecture %q (%s) and properties.architecture %q (%s) disagree; fix one of them", md.Architecture, a, pa, n)
	}
	return nil
}

// mapping returns the entries of a mapping node by key, refusing
// non-scalar and duplicate keys.
func mapping(n *yaml.Node, prefix string) (map[string]*yaml.Node, error) {
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: keys must be plain strings, not %s; fix the key", k.Line, yamlnode.Kind(k))
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("line %d: field %q appears twice; keep one", k.Line, prefix+k.Value)
		}
		out[k.Value] = resolve(n.Content[i+1])
	}
	return out, nil
}

// scalar returns a scalar's text; nil and null give "".
func scalar(n *yaml.Node, field string) (string, error) {
	if n == nil || isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("line %d: %q must be a string, not %s; write a single value", n.Line, field, yamlnode.Kind(n))
	}
	return n.Value, nil
}

// unixTime decodes an integer Unix time; nil and null give the zero time,
// and so does 0 if allowZero.
func unixTime(n *yaml.Node, field string, allowZero bool) (time.Time, error) {
	if n == nil || isNull(n) {
		return time.Time{}, nil
	}
	var sec int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&sec) != nil || sec < 0 || sec == 0 && !allowZero {
		what := yamlnode.Kind(n)
		if n.Kind == yaml.ScalarNode {
			what = strconv.Quote(n.Value)
		}
		return time.Time{}, fmt.Errorf(`line %d: %q must be a positive integer Unix time in seconds (as "date +%%s" prints), not %s`,
			n.Line, field, what)
	}
	if sec == 0 {
		return time.Time{}, nil
	}
	return time.Unix(sec, 0).UTC(), nil
}

// resolve follows YAML aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}
