package yamlnode

import (
	"testing"

	"gopkg.in/yaml.v3"
)

func TestKindAndValue(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a: [1, 2]\nb: {c: d}\ne: x\nf: *anchor\n"), &doc); err == nil {
		t.Fatal("an unknown anchor parsed")
	}
	if err := yaml.Unmarshal([]byte("a: [1, 2]\nb: &k {c: d}\ne: x\nf: *k\n"), &doc); err != nil {
		t.Fatal(err)
	}
	top := doc.Content[0]
	for key, want := range map[string]string{"a": "a list", "b": "a mapping", "e": `the scalar "x"`, "f": "an alias"} {
		if got := Kind(Value(top, key)); got != want {
			t.Errorf("Kind(%s) = %q, want %q", key, got, want)
		}
	}
	if Value(top, "missing") != nil || Value(Value(top, "a"), "1") != nil || Value(nil, "a") != nil {
		t.Error("Value found what is not there")
	}
	if Kind(&doc) != "a document" {
		t.Errorf("Kind(document) = %q", Kind(&doc))
	}
}
