package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/provenance"
	"github.com/incus-appliance/registry/internal/store"
)

// statementOf makes the provenance statement of img from in (none when in
// is nil): its subject is every file of the image as it will be stored
// (catalog path and sha256), the deltas aside (made at publish, from
// other versions). It returns the statement's digest and its bytes.
func statementOf(in *provenance.Inputs, img catalog.Image) (*catalog.FileRef, []byte, error) {
	if in == nil {
		return nil, nil, nil
	}
	inputs := *in
	inputs.Files = nil
	img.Deltas, img.Provenance = nil, nil
	if img.VM != nil {
		vm := *img.VM
		vm.Deltas = nil
		img.VM = &vm
	}
	for _, f := range img.Files() {
		inputs.Files = append(inputs.Files, provenance.File{Name: f.Path, SHA256: f.SHA256})
	}
	st, err := provenance.New(inputs)
	if err != nil {
		return nil, nil, err
	}
	data, err := st.Marshal()
	if err != nil {
		return nil, nil, err
	}
	return &catalog.FileRef{SHA256: digest.Of(data), Size: int64(len(data))}, data, nil
}

// Provenance returns the provenance statement of the image target names
// (as SBOM reads it), checked against its catalog digest.
func (r *Registry) Provenance(ctx context.Context, target, arch string) ([]byte, string, error) {
	return r.attachment(ctx, target, arch, catalog.FTypeProvenance, "provenance (published before provenance, or not from an appliance build)")
}

// verifyProvenance checks each version's provenance statement against the
// catalog: it is an in-toto Statement with a SLSA Provenance predicate,
// and each of its subjects is a file of the version with the same sha256,
// the version's metadata among them.
func (r *Registry) verifyProvenance(ctx context.Context, c *catalog.Catalog, rep *VerifyReport) error {
	for _, pk := range c.ProductKeys() {
		p := c.Products[pk]
		for _, vk := range p.VersionKeys() {
			v := p.Versions[vk]
			for _, it := range v.Items {
				if it.FType != catalog.FTypeProvenance {
					continue
				}
				data, _, err := r.readObject(ctx, it.Path)
				if errors.Is(err, store.ErrNotFound) || err == nil && digest.Of(data) != it.SHA256 {
					continue // verifyFiles reported it
				}
				if err != nil {
					return err
				}
				st, err := provenance.Parse(data)
				if err != nil {
					rep.problem("%s version %s: %s: %v", pk, vk, it.Path, err)
					continue
				}
				for _, m := range subjectMismatches(st.SubjectSHA256(), v) {
					rep.problem("%s version %s: provenance %s: %s", pk, vk, it.Path, m)
				}
			}
		}
	}
	return nil
}

// subjectMismatches lists how a statement's subjects (path: sha256)
// differ from version v's files.
func subjectMismatches(subjects map[string]string, v *catalog.Version) []string {
	files := map[string]string{}
	for _, it := range v.Items {
		files[it.Path] = it.SHA256
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(subjects)) {
		switch sum, ok := files[name]; {
		case !ok:
			out = append(out, fmt.Sprintf("subject %s is not a file of the version", name))
		case sum != subjects[name]:
			out = append(out, fmt.Sprintf("subject %s has sha256 %s, the catalog says %s", name, subjects[name], sum))
		}
	}
	for _, vi := range v.Images() {
		if _, ok := subjects[vi.Meta.Path]; !ok {
			out = append(out, fmt.Sprintf("the image's metadata %s is not a subject: the statement is about another image", vi.Meta.Path))
			break
		}
	}
	return out
}
