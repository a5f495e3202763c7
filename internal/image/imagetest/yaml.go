package imagetest

import (
	"bytes"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"
)

// YAML returns the metadata.yaml m describes: m.RawYAML if set, else the
// fields in distrobuilder's order.
func (m MetadataSpec) YAML() []byte {
	if m.RawYAML != "" {
		return []byte(m.RawYAML)
	}
	keep := func(name, v string) bool { return v != "" && !slices.Contains(m.Omit, name) }
	doc := &yaml.Node{Kind: yaml.MappingNode}
	add := func(parent *yaml.Node, key string, v *yaml.Node) {
		parent.Content = append(parent.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
	}
	str := func(s string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Value: s, Style: yaml.DoubleQuotedStyle}
	}
	num := func(n int64) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(n, 10)}
	}

	if keep("architecture", m.Architecture) {
		add(doc, "architecture", str(m.Architecture))
	}
	if m.CreationDate != 0 && !slices.Contains(m.Omit, "creation_date") {
		add(doc, "creation_date", num(m.CreationDate))
	}
	if m.ExpiryDate != 0 && !slices.Contains(m.Omit, "expiry_date") {
		add(doc, "expiry_date", num(m.ExpiryDate))
	}
	props := &yaml.Node{Kind: yaml.MappingNode}
	for _, p := range []struct{ key, v string }{
		{"architecture", m.ArchProperty}, {"description", m.Description}, {"name", m.Name},
		{"os", m.OS}, {"release", m.Release}, {"serial", m.Serial}, {"variant", m.Variant},
	} {
		if keep("properties."+p.key, p.v) {
			add(props, p.key, str(p.v))
		}
	}
	if !slices.Contains(m.Omit, "properties") {
		add(doc, "properties", props)
	}
	if !slices.Contains(m.Omit, "templates") {
		hostname := &yaml.Node{Kind: yaml.MappingNode}
		add(hostname, "when", &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle,
			Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "create"}, {Kind: yaml.ScalarNode, Value: "copy"}}})
		add(hostname, "template", &yaml.Node{Kind: yaml.ScalarNode, Value: "hostname.tpl"})
		tpls := &yaml.Node{Kind: yaml.MappingNode}
		add(tpls, "/etc/hostname", hostname)
		add(doc, "templates", tpls)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		panic("imagetest: " + err.Error()) // cannot happen: the tree is well-formed
	}
	return out.Bytes()
}
