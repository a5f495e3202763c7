package catalog

import (
	"fmt"
	"strings"

	"github.com/incus-appliance/registry/internal/osarch"
)

// DefaultVariant is the appliance variant published under the appliance's
// own name; every other variant (e.g. "cloud", with cloud-init) is its
// own product NAME/VARIANT whose aliases all end in /VARIANT, as
// images.linuxcontainers.org names debian/12 and debian/12/cloud.
const DefaultVariant = "default"

// IsDefaultVariant reports whether v names the default variant.
func IsDefaultVariant(v string) bool { return v == "" || v == DefaultVariant }

// variantAlias is alias a of variant v: a itself for the default variant,
// a/v otherwise.
func variantAlias(a, v string) string {
	if IsDefaultVariant(v) {
		return a
	}
	return a + "/" + v
}

// mainAlias is the image's main alias: its name, with /VARIANT for a
// non-default variant. It also names the product.
func (img Image) mainAlias() string { return variantAlias(img.Name, img.ApplianceVariant) }

// aliases are every alias the image's product gets, sorted: the main alias
// and the extra aliases, in the variant's form.
func (img Image) aliases() []string {
	out := []string{img.mainAlias()}
	for _, a := range img.Aliases {
		if !IsDefaultVariant(img.ApplianceVariant) && !strings.HasSuffix(a, "/"+img.ApplianceVariant) {
			a = variantAlias(a, img.ApplianceVariant)
		}
		out = append(out, a)
	}
	return sortedSet(out)
}

func (img Image) validateVariant() error {
	if IsDefaultVariant(img.ApplianceVariant) {
		return nil
	}
	if err := ValidateName(img.ApplianceVariant); err != nil {
		return fmt.Errorf("image %s: variant: %w", img.Name, err)
	}
	if osarch.Known(img.ApplianceVariant) {
		return fmt.Errorf("image %s: variant %q is an architecture name: Incus would read %s/%s as an architecture alias", img.Name, img.ApplianceVariant, img.Name, img.ApplianceVariant)
	}
	for _, a := range img.aliases() {
		if err := ValidateAlias(a); err != nil {
			return err
		}
	}
	return nil
}
