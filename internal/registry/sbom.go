package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
)

// SBOM returns the SBOM of the image target names (an alias, fingerprint
// or prefix, as Resolve reads it; arch narrows it down), checked against
// its catalog digest.
func (r *Registry) SBOM(ctx context.Context, target, arch string) ([]byte, string, error) {
	return r.attachment(ctx, target, arch, catalog.FTypeSBOM, "SBOM (published before SBOMs, or not from an appliance build)")
}

// attachment returns the file of type ftype of the version target names,
// checked against its catalog digest, and its path; lacking says what the
// version has none of, and why that may be.
func (r *Registry) attachment(ctx context.Context, target, arch, ftype, lacking string) ([]byte, string, error) {
	c, _, err := r.readCatalog(ctx)
	if err != nil {
		return nil, "", err
	}
	found, err := c.Resolve(target, arch)
	if err != nil {
		return nil, "", err
	}
	if len(found) > 1 {
		var arches []string
		for _, f := range found {
			arches = append(arches, c.Products[f.Product].Arch)
		}
		return nil, "", fmt.Errorf("%q names images for %s: give --arch", target, strings.Join(arches, ", "))
	}
	v := c.Products[found[0].Product].Versions[found[0].Version]
	for _, it := range v.Items {
		if it.FType != ftype {
			continue
		}
		data, _, err := r.readObject(ctx, it.Path)
		if err != nil {
			return nil, "", err
		}
		if got := digest.Of(data); got != it.SHA256 {
			return nil, "", fmt.Errorf("%s: sha256 %s, the catalog says %s", it.Path, got, it.SHA256)
		}
		return data, it.Path, nil
	}
	return nil, "", fmt.Errorf("%s version %s has no %s", found[0].Product, found[0].Version, lacking)
}
