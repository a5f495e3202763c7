// Package yamlnode holds what the packages that read YAML node trees
// (gopkg.in/yaml.v3) share: the name of a node's kind in an error
// message, and a mapping's value by key. It imports nothing of this
// module.
package yamlnode

import (
	"strconv"

	"gopkg.in/yaml.v3"
)

// Kind names a node's kind for an error message, with its article: "a
// mapping", "a list", "the scalar \"x\"", "an alias".
func Kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "the scalar " + strconv.Quote(n.Value)
	case yaml.DocumentNode:
		return "a document"
	}
	return "an alias"
}

// Value returns the value of key in the mapping m, or nil (also when m
// is not a mapping).
func Value(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
