package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/incus-appliance/registry/internal/catalog"
)

// Appliance variants (appliance.yaml "variants"). The default variant is
// the merged template (base + image.yaml) as it is; the cloud variant adds cloud-init, configured
// at launch with Incus's cloud-init.* keys (NoCloud: the daemon writes
// them into /var/lib/cloud/seed/nocloud-net/ from the image's templates).
const (
	VariantDefault = catalog.DefaultVariant
	VariantCloud   = "cloud"
)

// Instance types (appliance.yaml "types").
const (
	TypeContainer = "container"
	TypeVM        = "vm"
)

var (
	knownVariants = []string{VariantDefault, VariantCloud}
	knownTypes    = []string{TypeContainer, TypeVM}
)

// VariantList returns the appliance's variants (default: [default]).
func (a *Appliance) VariantList() []string {
	if len(a.Variants) == 0 {
		return []string{VariantDefault}
	}
	return a.Variants
}

// TypeList returns the appliance's instance types (default: [container]).
func (a *Appliance) TypeList() []string {
	if len(a.Types) == 0 {
		return []string{TypeContainer}
	}
	return a.Types
}

// HasVM reports whether the appliance declares the vm type.
func (a *Appliance) HasVM() bool { return slices.Contains(a.TypeList(), TypeVM) }

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
	if len(a.Types) > 0 && !slices.Contains(a.Types, TypeContainer) {
		errs = append(errs, fmt.Errorf("types: list container too: the VM disk is published beside the container image and shares its metadata"))
	}
	return errs
}

// VariantDir is the build folder name of a variant: NAME, or NAME/VARIANT.
func VariantDir(name, variant string) string {
	if catalog.IsDefaultVariant(variant) {
		return name
	}
	return name + "/" + variant
}

// cloudTemplate is the distrobuilder template of the cloud variant: the
// appliance's merged one with cloud-init installed and the four NoCloud seed
// files generated as Incus templates (distrobuilder's cloud-init
// generator: user-data, vendor-data, meta-data and network-config, filled
// from the instance's cloud-init.* keys at creation).
func cloudTemplate(template []byte) ([]byte, error) {
	return overlayTemplate(template, cloudOverlay)
}

// overlayTemplate appends the overlay's package sets and files to the
// template's.
func overlayTemplate(template []byte, overlay string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(template, &doc); err != nil {
		return nil, fmt.Errorf("the merged template: %w", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("the merged template is not a mapping")
	}
	root := doc.Content[0]
	var extra yaml.Node
	if err := yaml.Unmarshal([]byte(overlay), &extra); err != nil {
		return nil, err
	}
	ex := extra.Content[0]
	pkgs := mapValue(root, "packages")
	if pkgs == nil {
		return nil, errors.New("the merged template has no packages section")
	}
	appendSeq(pkgs, "sets", mapValue(ex, "sets"))
	appendSeq(root, "files", mapValue(ex, "files"))
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

// mapValue returns the value of key in mapping m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// appendSeq appends the items of seq to the sequence m[key], creating it.
func appendSeq(m *yaml.Node, key string, seq *yaml.Node) {
	if v := mapValue(m, key); v != nil && v.Kind == yaml.SequenceNode {
		v.Content = append(v.Content, seq.Content...)
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, seq)
}

// variantBuild returns the appliance as the build of variant sees it (its
// name the variant's build folder) and the template distrobuilder builds
// it from: the merged template (base + image.yaml, see Template) with the
// variant's additions.
func variantBuild(a *Appliance, variant string) (*Appliance, []byte, error) {
	if !catalog.IsDefaultVariant(variant) && !slices.Contains(a.VariantList(), variant) {
		return nil, nil, fmt.Errorf("build %s: variant %q is not in its variants %v (appliance.yaml)", a.Name, variant, a.VariantList())
	}
	tmpl, err := a.Template()
	if err != nil {
		return nil, nil, fmt.Errorf("build %s: %w", a.Name, err)
	}
	switch {
	case catalog.IsDefaultVariant(variant):
		return a, tmpl, nil
	case variant == VariantCloud:
		tmpl, err = cloudTemplate(tmpl)
	default:
		err = fmt.Errorf("unknown variant %q", variant)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("build %s/%s: %w", a.Name, variant, err)
	}
	b := *a
	b.Name = VariantDir(a.Name, variant)
	return &b, tmpl, nil
}
