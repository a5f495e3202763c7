package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/key"
)

// New returns an empty catalog.
func New() *Catalog {
	return &Catalog{
		ContentID: ContentID,
		DataType:  DataTypeImages,
		Format:    FormatProducts,
		Products:  map[string]*Product{},
	}
}

// Parse decodes images.json. It rejects what would break clients or this
// tool: invalid JSON, a wrong type anywhere (one such field makes Incus drop
// the whole remote), a wrong format/datatype, null products or versions,
// and items without a valid ftype, path, sha256 or size. Softer problems
// (unknown architectures, duplicate aliases, missing combined hashes) are
// reported by Problems instead, so an imperfect registry can be repaired.
func Parse(data []byte) (*Catalog, error) {
	return ParseFile(ImagesPath, data)
}

// ParseFile is Parse for the product file at path (errors name it).
func ParseFile(path string, data []byte) (*Catalog, error) {
	var c Catalog
	if err := decodeStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.checkStructure(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// Marshal encodes the catalog deterministically: the same catalog always
// gives the same bytes (sorted map keys, fixed indentation, final newline).
func (c *Catalog) Marshal() []byte {
	return marshal(c)
}

// ParseIndex decodes index.json with the same strictness as Parse.
func ParseIndex(data []byte) (*Index, error) {
	var ix Index
	if err := decodeStrict(data, &ix); err != nil {
		return nil, fmt.Errorf("%s: %w", IndexPath, err)
	}
	if ix.Format != FormatIndex {
		return nil, fmt.Errorf("%s: format is %q, want %q", IndexPath, ix.Format, FormatIndex)
	}
	if ix.Index == nil {
		return nil, fmt.Errorf("%s: missing \"index\" object", IndexPath)
	}
	return &ix, nil
}

// Marshal encodes the index deterministically.
func (ix *Index) Marshal() []byte {
	if ix.compact {
		b, err := json.Marshal(ix)
		if err != nil {
			panic(fmt.Sprintf("catalog: marshal: %v", err))
		}
		return append(b, '\n')
	}
	return marshal(ix)
}

func marshal(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		// Only unsupported types fail here, and the model has none.
		panic(fmt.Sprintf("catalog: marshal: %v", err))
	}
	return append(b, '\n')
}

// decodeStrict decodes one JSON document. json.Unmarshal works on data in
// place (a Decoder would copy it whole into its own buffer first: twice
// the memory for a catalog of tens of megabytes).
func decodeStrict(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("empty file")
	}
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("field %q: JSON %s where %s is required (at byte %d)", te.Field, te.Value, te.Type, te.Offset)
	case errors.As(err, &se) && strings.Contains(se.Error(), "after top-level value"):
		return fmt.Errorf("unexpected data after the JSON document (at byte %d)", se.Offset)
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, se)
	}
	return fmt.Errorf("invalid JSON: %v", err)
}

func (c *Catalog) checkStructure() error {
	if c.DataType != DataTypeImages {
		return fmt.Errorf("datatype is %q, want %q", c.DataType, DataTypeImages)
	}
	switch {
	case c.Format == FormatRoot && (c.State == nil || c.State.Shards < 2 || len(c.Products) > 0):
		return fmt.Errorf("format %q is the root of a sharded catalog, but it names no product files or holds products", FormatRoot)
	case c.Format == FormatProducts && c.State != nil && c.State.Shards > 1:
		return fmt.Errorf("registry_state names %d product files, but the format is %q, not %q", c.State.Shards, c.Format, FormatRoot)
	case c.Format != FormatProducts && c.Format != FormatRoot:
		return fmt.Errorf("format is %q, want %q", c.Format, FormatProducts)
	}
	if c.Products == nil {
		return fmt.Errorf("missing \"products\" object")
	}
	for pk, p := range c.Products {
		if p == nil {
			return fmt.Errorf("product %q is null", pk)
		}
		if p.Versions == nil {
			p.Versions = map[string]*Version{}
		}
		for vk, v := range p.Versions {
			if v == nil || v.Items == nil {
				return fmt.Errorf("product %q version %q has no items", pk, vk)
			}
			for ik, it := range v.Items {
				if err := it.check(); err != nil {
					return fmt.Errorf("product %q version %q item %q: %w", pk, vk, ik, err)
				}
			}
		}
	}
	if c.State != nil {
		for path := range c.State.Retired {
			if err := checkPath(path); err != nil {
				return fmt.Errorf("registry_state.retired: %w", err)
			}
		}
	}
	return nil
}

func (it Item) check() error {
	if it.FType == "" {
		return fmt.Errorf("missing ftype")
	}
	if err := checkPath(it.Path); err != nil {
		return err
	}
	if !digest.IsSHA256(it.SHA256) {
		return fmt.Errorf("sha256 %q is not 64 lowercase hex digits", it.SHA256)
	}
	if it.Size < 0 {
		return fmt.Errorf("negative size %d", it.Size)
	}
	for _, h := range []string{it.CombinedSHA256, it.CombinedSquashfsSHA256, it.CombinedRootXZSHA256, it.CombinedDiskKVMImgSHA256} {
		if h != "" && !digest.IsSHA256(h) {
			return fmt.Errorf("combined hash %q is not 64 lowercase hex digits", h)
		}
	}
	return nil
}

// checkPath accepts a path that is a valid registry key (package key: the
// one rule the stores and edgeproxy apply too).
func checkPath(p string) error {
	if err := key.Check(p); err != nil {
		return fmt.Errorf("not a clean relative path: %w", err)
	}
	return nil
}

// Clone returns a deep copy of the catalog (cheaper than parsing its JSON
// again: a publish starts several commits from one read).
func (c *Catalog) Clone() *Catalog {
	out := *c
	out.Products = make(map[string]*Product, len(c.Products))
	for k, p := range c.Products {
		q := *p
		q.Requirements, q.Custom = maps.Clone(p.Requirements), maps.Clone(p.Custom)
		q.Versions = make(map[string]*Version, len(p.Versions))
		for vk, v := range p.Versions {
			w := *v
			w.Items = maps.Clone(v.Items)
			q.Versions[vk] = &w
		}
		out.Products[k] = &q
	}
	if c.State != nil {
		st := *c.State
		st.Commits = slices.Clone(st.Commits)
		st.Retired = maps.Clone(st.Retired)
		st.Pending = slices.Clone(st.Pending)
		for i, p := range st.Pending {
			st.Pending[i].Paths, st.Pending[i].Aliases = slices.Clone(p.Paths), slices.Clone(p.Aliases)
		}
		if st.Pruning != nil {
			pr := *st.Pruning
			pr.Paths = slices.Clone(pr.Paths)
			st.Pruning = &pr
		}
		out.State = &st
	}
	return &out
}
