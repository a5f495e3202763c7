package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/yamlnode"
)

// Appliance variants (appliance.yaml "variants"). The default variant is
// the merged template (base + image.yaml) as it is; the cloud variant
// adds cloud-init, configured at launch with Incus's cloud-init.* keys
// (NoCloud: the daemon writes them into /var/lib/cloud/seed/nocloud-net/
// from the image's templates).
const (
	VariantDefault = catalog.DefaultVariant
	variantCloud   = "cloud"
)

// Instance types (appliance.yaml "types").
const (
	typeContainer = "container"
	typeVM        = "vm"
)

var (
	knownVariants = []string{VariantDefault, variantCloud}
	knownTypes    = []string{typeContainer, typeVM}
)

// VariantList returns the appliance's variants (default: [default]).
func (a *Appliance) VariantList() []string {
	if len(a.Variants) == 0 {
		return []string{VariantDefault}
	}
	return a.Variants
}

// HasVM reports whether the appliance declares the vm type (types
// default to [container]).
func (a *Appliance) HasVM() bool { return slices.Contains(a.Types, typeVM) }

func (a *Appliance) checkVariantsAndTypes() []error {
	var errs []error
	check := func(field string, list, known []string) {
		seen := map[string]bool{}
		for _, v := range list {
			if !slices.Contains(known, v) {
				errs = append(errs, fmt.Errorf("%s: unknown %q (known: %v)", field, v, known))
			}
			if seen[v] {
				errs = append(errs, fmt.Errorf("%s: %q is listed twice", field, v))
			}
			seen[v] = true
		}
	}
	check("variants", a.Variants, knownVariants)
	check("types", a.Types, knownTypes)
	if len(a.Types) > 0 && !slices.Contains(a.Types, typeContainer) {
		errs = append(errs, fmt.Errorf("types: list container too: the VM disk is published beside the container image and shares its metadata"))
	}
	return errs
}

// VariantTemplate returns the distrobuilder template of variant (""
// or default: the default one): the merged template (base + image.yaml,
// see Template) with the variant's additions. The cloud variant adds
// cloud-init and the four NoCloud seed files generated as Incus
// templates (distrobuilder's cloud-init generator: user-data,
// vendor-data, meta-data and network-config, filled from the instance's
// cloud-init.* keys at creation).
func (a *Appliance) VariantTemplate(variant string) ([]byte, error) {
	if !catalog.IsDefaultVariant(variant) && !slices.Contains(a.VariantList(), variant) {
		return nil, fmt.Errorf("variant %q is not in its variants %v (appliance.yaml)", variant, a.VariantList())
	}
	tmpl, err := a.Template()
	if err != nil {
		return nil, err
	}
	switch {
	case catalog.IsDefaultVariant(variant):
		return tmpl, nil
	case variant == variantCloud:
		tmpl, err = ExtendTemplate(tmpl, cloudOverlay)
	default:
		err = errors.New("unknown variant")
	}
	if err != nil {
		return nil, fmt.Errorf("variant %s: %w", variant, err)
	}
	return tmpl, nil
}

// ExtendTemplate appends the package sets and files of extra (a YAML
// mapping with sets: and files:) to those of the template.
func ExtendTemplate(template []byte, extra string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(template, &doc); err != nil {
		return nil, fmt.Errorf("the merged template: %w", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("the merged template is not a mapping")
	}
	root := doc.Content[0]
	var add yaml.Node
	if err := yaml.Unmarshal([]byte(extra), &add); err != nil {
		return nil, err
	}
	ex := add.Content[0]
	pkgs := yamlnode.Value(root, "packages")
	if pkgs == nil {
		return nil, errors.New("the merged template has no packages section")
	}
	appendSeq(pkgs, "sets", yamlnode.Value(ex, "sets"))
	appendSeq(root, "files", yamlnode.Value(ex, "files"))
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

const cloudOverlay = `
sets:
- packages: [cloud-init]
  action: install
  flags: [--no-install-recommends]
files:
- name: meta-data
  generator: cloud-init
- name: network-config
  generator: cloud-init
- name: user-data
  generator: cloud-init
- name: vendor-data
  generator: cloud-init
`

// appendSeq appends the items of seq to the sequence m[key], creating it.
func appendSeq(m *yaml.Node, key string, seq *yaml.Node) {
	if v := yamlnode.Value(m, key); v != nil && v.Kind == yaml.SequenceNode {
		v.Content = append(v.Content, seq.Content...)
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, seq)
}
