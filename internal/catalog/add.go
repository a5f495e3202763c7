package catalog

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/osarch"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/key"
)

// RootKind is the kind of an image's root file.
type RootKind string

// Root kinds of split images.
const (
	RootSquashfs RootKind = "squashfs" // container root filesystem
	RootTarXZ    RootKind = "tar.xz"   // container root as a tarball
	RootQCOW2    RootKind = "qcow2"    // virtual-machine disk
)

// rootKinds maps a root kind to its item key and ftype (its file name is
// in paths.go). The item keys are the ftypes, as incus-simplestreams names
// them: its `remove` looks root items up by those keys.
var rootKinds = map[RootKind]struct{ itemKey, ftype string }{
	RootSquashfs: {FTypeSquashfs, FTypeSquashfs},
	RootTarXZ:    {"root.tar.xz", FTypeRootTarXZ},
	RootQCOW2:    {"disk-kvm.img", FTypeDiskKVMImg},
}

// FileRef is the digest and size of one file.
type FileRef struct {
	SHA256 string
	Size   int64
}

// Image is a split image to publish: what Add needs to know about it.
type Image struct {
	// Name is the appliance name; it is the product's main alias.
	Name string
	// Arch is the architecture in any spelling NormalizeArch accepts.
	Arch                               string
	OS, Release, ReleaseTitle, Variant string
	// Description becomes the version label, shown by `incus image list`.
	Description  string
	Created      time.Time
	Aliases      []string
	Requirements map[string]string
	Fingerprint  string
	Metadata     FileRef
	Root         FileRef
	RootKind     RootKind
	// ApplianceVersion and Custom describe the appliance (optional).
	ApplianceVersion string
	Custom           map[string]string
	// Profiles are Incus profiles shipped with the image, by name.
	Profiles map[string]FileRef
	// Deltas are deltas from older versions of the product (DeltaBases)
	// to this image's root, listed with the new version (see
	// checkDeltas), newest base first.
	Deltas []Delta
	// SBOM is the image's SPDX SBOM (optional), stored beside its files.
	SBOM *FileRef
	// Provenance is the image's build provenance (optional): an in-toto
	// Statement whose subject is the image's other files.
	Provenance *FileRef
	// Line, when set, is the version line ("MAJOR.MINOR" of
	// ApplianceVersion) whose product the image goes into (lines.go).
	Line string
	// ApplianceVariant is the appliance variant the image is ("" and
	// "default" are the default one): another variant is its own product,
	// NAME/VARIANT, whose aliases all end in /VARIANT (see variant.go).
	ApplianceVariant string
	// VM, if set, is a virtual-machine disk published in the same version
	// as the (container) root, sharing its metadata tarball (see vm.go).
	VM *VMDisk
}

// ProductKey is the key of the product holding appliance name on arch.
func ProductKey(name, arch string) string {
	return name + ":" + osarch.Canonical(arch)
}

// MaxProductKeyLen bounds a product key.
const MaxProductKeyLen = 256

// ValidateProductKey checks a product key: a registry key (package key:
// ASCII letters, digits and . _ - : + ~ @ =, in '/'-separated segments,
// none empty or starting with '.') of at most MaxProductKeyLen bytes. The
// keys this registry makes (NAME:ARCH, NAME/VARIANT:LINE:ARCH) and other
// servers' (debian:bookworm:amd64:default,
// com.ubuntu.cloud:server:24.04:amd64) pass; a key that could mean
// something else to a terminal, a log or a file system does not.
func ValidateProductKey(pk string) error {
	if len(pk) > MaxProductKeyLen {
		return fmt.Errorf("product key %.32q... is longer than %d bytes", pk, MaxProductKeyLen)
	}
	if err := key.Check(pk); err != nil {
		return fmt.Errorf("product key: %w", err)
	}
	return nil
}

// ProductKey is the key of the product the image belongs to: its name
// (NAME/VARIANT for a non-default appliance variant) on its architecture,
// NAME:LINE:ARCH when it has a version line (lines.go).
func (img Image) ProductKey() string {
	if img.Line != "" {
		return lineProductKey(img.mainAlias(), img.Line, img.Arch)
	}
	return ProductKey(img.mainAlias(), img.Arch)
}

// Validate checks the image's own fields (not its fit with a catalog).
func (img Image) Validate() error {
	if err := ValidateName(img.Name); err != nil {
		return err
	}
	if err := ValidateAlias(img.Name); err != nil {
		return fmt.Errorf("appliance name: %w (the name is the image's main alias)", err)
	}
	if _, err := osarch.Normalize(img.Arch); err != nil {
		return err
	}
	for field, v := range map[string]string{"os": img.OS, "release": img.Release} {
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("image %s: empty %s", img.Name, field)
		}
	}
	if img.Created.IsZero() || img.Created.Year() < 1970 {
		return fmt.Errorf("image %s: creation date %v is not set", img.Name, img.Created)
	}
	if _, ok := rootKinds[img.RootKind]; !ok {
		return fmt.Errorf("image %s: unknown root kind %q", img.Name, img.RootKind)
	}
	if !digest.IsSHA256(img.Fingerprint) || !digest.IsSHA256(img.Metadata.SHA256) || !digest.IsSHA256(img.Root.SHA256) {
		return fmt.Errorf("image %s: fingerprint and file digests must be 64 lowercase hex digits", img.Name)
	}
	if img.Metadata.Size <= 0 || img.Root.Size <= 0 {
		return fmt.Errorf("image %s: empty metadata or root file", img.Name)
	}
	for _, a := range img.Aliases {
		if err := ValidateAlias(a); err != nil {
			return err
		}
	}
	if img.Line != "" {
		if l, err := LineOf(img.ApplianceVersion); err != nil || l != img.Line {
			return fmt.Errorf("image %s: line %q is not the MAJOR.MINOR of version %q", img.Name, img.Line, img.ApplianceVersion)
		}
	}
	if img.SBOM != nil && (!digest.IsSHA256(img.SBOM.SHA256) || img.SBOM.Size <= 0) {
		return fmt.Errorf("image %s: SBOM: bad digest or size", img.Name)
	}
	if img.Provenance != nil && (!digest.IsSHA256(img.Provenance.SHA256) || img.Provenance.Size <= 0) {
		return fmt.Errorf("image %s: provenance: bad digest or size", img.Name)
	}
	for name, ref := range img.Profiles {
		if err := ValidateName(name); err != nil {
			return fmt.Errorf("image %s: profile: %w", img.Name, err)
		}
		if !digest.IsSHA256(ref.SHA256) || ref.Size < 0 {
			return fmt.Errorf("image %s: profile %s: bad digest or size", img.Name, name)
		}
	}
	if err := img.validateVariant(); err != nil {
		return err
	}
	return img.validateVM()
}

// AddResult says what Add changed.
type AddResult struct {
	Product        string
	Version        string
	ProductCreated bool
	VersionAdded   bool
	AliasesAdded   []string
	// DeltaAdded is true when the new version was listed with img.Deltas
	// (a delta is only ever added together with its version).
	DeltaAdded bool
	// VMAdded is true when the version was already published without the
	// image's VM disk, which Add puts beside its root.
	VMAdded bool
}

// Changed reports whether Add modified the catalog.
func (r AddResult) Changed() bool {
	return r.VersionAdded || r.VMAdded || len(r.AliasesAdded) > 0
}

// Add publishes img as a version of the product img.ProductKey(),
// creating the product when new (a product it changes records publish
// as its writer: writer.go), and gives the product the aliases
// img.Name and img.Aliases (in the variant's form, NAME/VARIANT, for a
// non-default appliance variant; assigned across the version lines for an
// image with a Line). Rules:
//   - an alias owned by another product on the same architecture is refused,
//     naming the owner;
//   - the version key is VersionKey(img.Created); a version never changes:
//     the identical image again is a no-op (new aliases are still added;
//     its deltas and provenance do not count: see sameImage), different
//     content under an existing key is refused;
//   - a fingerprint is published at most once in the whole catalog;
//   - img.Deltas, added with a new version only, must each name a
//     different older version of the same product that is in the catalog
//     with the image the delta was made from, as Incus resolves it (a
//     version already published keeps the deltas it has).
//
// On error the catalog is unchanged.
func (c *Catalog) Add(img Image) (AddResult, error) {
	res, err := c.CheckAdd(img)
	if err != nil {
		return res, err
	}
	p := c.Products[res.Product]
	if p == nil {
		p = &Product{Versions: map[string]*Version{}}
		c.Products[res.Product] = p
	}
	if res.Changed() {
		p.Writer = WriterPublish
	}
	if res.VersionAdded {
		if len(p.Versions) == 0 || res.Version >= slices.Max(slices.Collect(maps.Keys(p.Versions))) {
			p.Arch, p.OS, p.Release, p.Variant = osarch.Canonical(img.Arch), img.OS, img.Release, img.Variant
			p.ReleaseTitle = img.ReleaseTitle
			if p.ReleaseTitle == "" {
				p.ReleaseTitle = img.Release
			}
			p.Requirements = maps.Clone(img.Requirements)
			p.Version, p.Custom = img.ApplianceVersion, maps.Clone(img.Custom)
		}
		p.Versions[res.Version] = img.version()
		c.unretire(img.Paths()...)
	}
	if res.VMAdded {
		img.addVM(p.Versions[res.Version]) // its other items, deltas included, stay
		c.unretire(img.VM.Path())
	}
	if (res.VersionAdded || res.VMAdded) && img.vmImage() != "" {
		p.Versions[anchorKey(res.Version)] = img.anchor()
	}
	if img.Line != "" {
		p.Line = img.Line
		arch := osarch.Canonical(img.Arch)
		assign := c.lineAliases(img.Name, img.ApplianceVariant, arch, "", img.Aliases)
		if plain := c.plainProduct(img.Name, img.ApplianceVariant, arch); plain != "" {
			c.Products[plain].Aliases = "" // the lines took them over
		}
		for pk, as := range assign {
			c.Products[pk].setAliases(img.mainAlias(), as)
		}
		return res, nil
	}
	p.setAliases(img.mainAlias(), append(p.AliasList(), res.AliasesAdded...))
	return res, nil
}

// CheckAdd applies Add's rules without changing the catalog: it returns
// what Add would do, or the error Add would return.
func (c *Catalog) CheckAdd(img Image) (AddResult, error) {
	if err := img.Validate(); err != nil {
		return AddResult{}, err
	}
	arch := osarch.Canonical(img.Arch)
	pk := img.ProductKey()
	vk := VersionKey(img.Created)
	res := AddResult{Product: pk, Version: vk}
	aliases := img.aliases()
	if img.Line != "" {
		assign := c.lineAliases(img.Name, img.ApplianceVariant, arch, img.Line, img.Aliases)
		if err := c.checkLineAliases(img.Name, img.ApplianceVariant, arch, assign); err != nil {
			return res, err
		}
		aliases = assign[pk]
	} else {
		for _, a := range aliases {
			if err := c.checkAliasOwner(a, arch, pk); err != nil {
				return res, err
			}
		}
	}
	for _, fp := range img.fingerprints() {
		if opk, ovk, ok := c.FindFingerprint(fp); ok && (opk != pk || ovk != vk) {
			return res, fmt.Errorf("image %s is already published as product %q version %s: remove it there first", fp, opk, ovk)
		}
	}
	p := c.Products[pk]
	if p == nil || p.Versions[vk] == nil {
		if err := img.checkDeltas(pk, p, vk); err != nil {
			return res, err
		}
		res.DeltaAdded = len(img.Deltas) > 0
	}
	if p == nil {
		res.ProductCreated, res.VersionAdded, res.AliasesAdded = true, true, aliases
		return res, nil
	}
	if old := p.Versions[vk]; old == nil {
		res.VersionAdded = true
	} else if img.addsVMTo(old) {
		res.VMAdded = true
	} else if !sameImage(old, img.version()) {
		return res, fmt.Errorf("version %s of %s is already published with different content (%s); a published version never changes: rebuild the image so it gets a new creation_date", vk, pk, old.describe())
	}
	for _, a := range aliases {
		if !p.hasAlias(a) {
			res.AliasesAdded = append(res.AliasesAdded, a)
		}
	}
	return res, nil
}

// sameVersion reports whether two versions hold the same items, whatever
// their keys (versions published before the squashfs root item was keyed
// "squashfs" had it under "root.squashfs").
func sameVersion(a, b *Version) bool {
	if a.Label != b.Label || a.PubName != b.PubName || len(a.Items) != len(b.Items) {
		return false
	}
	count := map[Item]int{}
	for _, it := range a.Items {
		count[it]++
	}
	for _, it := range b.Items {
		if count[it]--; count[it] < 0 {
			return false
		}
	}
	return true
}

// FindFingerprint returns where an image fingerprint is published.
func (c *Catalog) FindFingerprint(fp string) (product, version string, ok bool) {
	for _, pk := range c.ProductKeys() {
		for _, vk := range c.Products[pk].VersionKeys() {
			for _, vi := range c.Products[pk].Versions[vk].Images() {
				if vi.Fingerprint == fp {
					return pk, vk, true
				}
			}
		}
	}
	return "", "", false
}
