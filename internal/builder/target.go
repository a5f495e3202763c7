package builder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/catalog"
)

// The files of a build, in its folder (and in the work folder it is made
// in before it replaces the folder).
const (
	metadataFile = "incus.tar.xz"    // the metadata tarball
	rootfsFile   = "rootfs.squashfs" // the root
	diskFile     = "disk.qcow2"      // the VM disk (VM)
	logFile      = "build.log"       // distrobuilder's log
	vmLogFile    = "build-vm.log"    // the VM build's log
	templateFile = "template.yaml"   // the template distrobuilder built from
	recordFile   = "build.json"      // what the outputs were built from
	vmInputsFile = "vm.inputs"       // what the VM disk was built from
	packagesFile = "packages.txt"    // the installed packages (dpkg-query -W)
	sourcesFile  = "sources.list"    // the image's APT sources
)

// Target is one build of an appliance: one variant for one architecture,
// in a build folder. Its folder, files and label are named here and
// nowhere else:
//
//	ROOT/NAME/ARCH/          the default variant, labelled NAME/ARCH
//	ROOT/NAME/VARIANT/ARCH/  another variant, labelled NAME/VARIANT/ARCH
//	  incus.tar.xz, rootfs.squashfs  the split image
//	  disk.qcow2                     the VM disk (VM)
//	  sbom.spdx.json                 the SBOM (sbom.FileName)
//	  packages.txt, sources.list     the installed packages, the APT sources
//	  build.json, build.log          what it was built from, the log
//	  template.yaml                  the template distrobuilder built from
//	  gate.json                      the release gate's report (gate.ReportFileName)
//	ROOT/NAME[/VARIANT]/ARCH.failed.log  the log of the last failed build
type Target struct {
	// Root is the build folder (--build-dir).
	Root string
	// Name is the appliance's name.
	Name string
	// Variant is the appliance variant; "" and "default" are the default
	// one.
	Variant string
	// Arch is the canonical architecture.
	Arch string
}

// Targets lists the builds of a: each of variants (nil: every one a
// lists) for each of arches (nil: every one a lists), variant by variant.
// The arches a does not list are returned in unlisted (each once).
func Targets(root string, a *appliance.Appliance, variants, arches []string) (targets []Target, unlisted []string) {
	if variants == nil {
		variants = a.VariantList()
	}
	if arches == nil {
		arches = a.Arches()
	}
	for _, arch := range arches {
		if !slices.Contains(a.Arches(), arch) {
			unlisted = append(unlisted, arch)
		}
	}
	for _, variant := range variants {
		for _, arch := range arches {
			if !slices.Contains(unlisted, arch) {
				targets = append(targets, Target{Root: root, Name: a.Name, Variant: variant, Arch: arch})
			}
		}
	}
	return targets, unlisted
}

// IsDefault reports whether t is the default variant.
func (t Target) IsDefault() bool { return catalog.IsDefaultVariant(t.Variant) }

// variantName is NAME, or NAME/VARIANT.
func (t Target) variantName() string {
	if t.IsDefault() {
		return t.Name
	}
	return t.Name + "/" + t.Variant
}

// Label names the target in messages: NAME/ARCH, or NAME/VARIANT/ARCH.
func (t Target) Label() string { return t.variantName() + "/" + t.Arch }

// Dir is the target's folder.
func (t Target) Dir() string { return filepath.Join(t.Root, t.variantName(), t.Arch) }

// Metadata is the metadata tarball of the build.
func (t Target) Metadata() string { return t.file(metadataFile) }

// Rootfs is the root (squashfs) of the build.
func (t Target) Rootfs() string { return t.file(rootfsFile) }

// Disk is the VM disk of the build (made by VM).
func (t Target) Disk() string { return t.file(diskFile) }

// Template is the template distrobuilder built from, kept beside the log.
func (t Target) Template() string { return t.file(templateFile) }

func (t Target) file(name string) string { return filepath.Join(t.Dir(), name) }

// failedLog is where the log of a failed build is kept (kind "" for the
// container build, "vm" for the VM disk's).
func (t Target) failedLog(kind string) string {
	if kind != "" {
		kind = "." + kind
	}
	return filepath.Join(t.Root, t.variantName(), t.Arch+kind+".failed.log")
}

// errNotBuilt is returned by built when a target has no outputs.
var errNotBuilt = errors.New("not built")

// built reports whether the target's outputs are there (errNotBuilt
// when they are not).
func (t Target) built() error {
	if !exist(t.Metadata(), t.Rootfs()) {
		return fmt.Errorf("%s: %w (no %s): run `publish build %s`", t.Label(), errNotBuilt, t.Dir(), t.Name)
	}
	return nil
}

// exist reports whether every file exists.
func exist(files ...string) bool {
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return false
		}
	}
	return true
}

// existing returns path when the file exists, or "".
func existing(path string) string {
	if !exist(path) {
		return ""
	}
	return path
}
