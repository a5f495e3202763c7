// Package builder builds appliances (internal/appliance) with
// distrobuilder and describes the builds for publishing. A build is a
// Target (an appliance's variant for one architecture, in a build
// folder), which names its folder, files and label. Container builds the
// split image (incus.tar.xz + rootfs.squashfs) when its inputs changed,
// reproducibly (reproducible.go), checks the root is clean and records
// its digests, installed packages, APT sources and SBOM beside it; VM
// builds the bootable disk beside it. CheckStale says whether a build is
// due without building (changed inputs, package updates in the Debian
// archive). FileRequest and Requests turn files and builds into publish
// requests (internal/registry).
package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/gitrepo"
	"github.com/incus-appliance/registry/internal/osarch"
)

// Options control Container and VM.
type Options struct {
	// Compression of the squashfs: "xz" (releases, the default) or a
	// faster "gzip"/"gzip-1", "zstd", "lzo" (tests). The metadata tarball
	// is always published as xz.
	Compression string
	// Force rebuilds even when the inputs did not change.
	Force bool
	// CacheDir keeps distrobuilder's work and download directories
	// (default ROOT/.cache).
	CacheDir string
	// Distrobuilder is the binary (default "distrobuilder" on PATH).
	Distrobuilder string
	// Progress, if set, receives one line per build step.
	Progress func(step string)
	// KeepUnchanged keeps the previous outputs when a (forced) rebuild
	// from the same inputs installed the same package versions: nothing
	// changed but timestamps, so there is nothing new to publish.
	KeepUnchanged bool
}

// Result is what Container or VM did.
type Result struct {
	Dir, Metadata, Rootfs string
	// Disk is the VM disk (VM), or "".
	Disk string
	// Skipped is true when the inputs had not changed since the last
	// build (nothing was run).
	Skipped bool
	// Unchanged is true when KeepUnchanged kept the previous outputs
	// after a rebuild that changed nothing.
	Unchanged bool
	// Properties is true when a skipped build's image properties were
	// brought up to date (properties.go): a new metadata tarball.
	Properties bool
	Inputs     string // hash of the inputs
	Log        string // the build log
}

// record is the target's build.json: what the outputs were built from.
type record struct {
	Inputs        string    `json:"inputs"`
	Distrobuilder string    `json:"distrobuilder"`
	Compression   string    `json:"compression"`
	Built         time.Time `json:"built"`
	// What the image's provenance names besides (provenance.go): when the
	// build began, the digests of the appliance folder and of its base
	// template, and the folder's git source, as they were at the build.
	Started      time.Time       `json:"started,omitzero"`
	FolderSHA256 string          `json:"folder_sha256,omitempty"`
	BaseSHA256   string          `json:"base_sha256,omitempty"`
	Source       *gitrepo.Source `json:"source,omitempty"`
}

// resolve makes the folders absolute (distrobuilder runs in the appliance
// folder) and fills in the defaults.
func (o *Options) resolve(t *Target) error {
	for _, p := range []*string{&t.Root, &o.CacheDir} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(t.Root, ".cache")
	}
	if o.Distrobuilder == "" {
		o.Distrobuilder = "distrobuilder"
	}
	if o.Compression == "" {
		o.Compression = "xz"
	}
	return nil
}

// Container builds the target's split image with distrobuilder, unless
// the inputs (the appliance folder, the variant's template, the tool's
// version, the architecture and compression) are those of the outputs
// already there. The log is kept next to the outputs; a failure names the
// step that failed.
func Container(ctx context.Context, a *appliance.Appliance, t Target, opts Options) (*Result, error) {
	if err := opts.resolve(&t); err != nil {
		return nil, err
	}
	if _, ok := osarch.Kernel(t.Arch); !ok {
		return nil, fmt.Errorf("build %s: unsupported architecture %q", a.Name, t.Arch)
	}
	started := time.Now().UTC()
	in, err := inputs(ctx, a, t, opts)
	if err != nil {
		return nil, err
	}
	res := &Result{Dir: t.Dir(), Metadata: t.Metadata(), Rootfs: t.Rootfs(), Log: t.file(logFile), Inputs: in.hash}
	if !opts.Force && upToDate(t, res.Inputs) {
		res.Skipped = true
		res.Properties, err = syncProperties(ctx, a, t, in.epoch)
		return res, err
	}
	// Build into a fresh work folder; the outputs replace the old ones
	// only when everything succeeded.
	if err := os.MkdirAll(filepath.Dir(t.Dir()), 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(filepath.Dir(t.Dir()), "."+t.Arch+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := makeContainer(ctx, a, t, opts, in, work); err != nil {
		return nil, err
	}
	if opts.KeepUnchanged && samePackages(t.Dir(), work) && upToDate(t, res.Inputs) {
		res.Skipped, res.Unchanged = true, true
		res.Properties, err = syncProperties(ctx, a, t, in.epoch)
		return res, err
	}
	rec := record{Inputs: res.Inputs, Distrobuilder: in.tool, Compression: opts.Compression, Built: time.Now().UTC(), Started: started}
	if err := rec.describeSources(ctx, a); err != nil {
		return nil, fmt.Errorf("build %s: %w", t.Label(), err)
	}
	data, _ := json.MarshalIndent(rec, "", "  ")
	if err := os.WriteFile(filepath.Join(work, recordFile), data, 0o644); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(t.Dir()); err != nil {
		return nil, err
	}
	if err := os.Chmod(work, 0o755); err != nil {
		return nil, err
	}
	return res, os.Rename(work, t.Dir())
}

// makeContainer runs distrobuilder into work and completes its outputs
// there: the deterministic metadata tarball, the digest record, the
// package list, the clean check and the SBOM.
func makeContainer(ctx context.Context, a *appliance.Appliance, t Target, opts Options, in *buildInputs, work string) error {
	logPath := filepath.Join(work, logFile)
	// The template distrobuilder builds, kept beside the build log.
	tmplPath := filepath.Join(work, templateFile)
	if err := os.WriteFile(tmplPath, in.template, 0o644); err != nil {
		return err
	}
	err := runDistrobuilder(ctx, a, t, opts, logPath, tmplPath, in.epoch, "",
		"build-incus", tmplPath, work, "--type", "split", "--compression", opts.Compression,
		"-o", "image.serial="+time.Now().UTC().Format("20060102_1504"))
	if err != nil {
		kept := t.failedLog("")
		_ = os.Rename(logPath, kept)
		return fmt.Errorf("build %s: %w (log: %s)", t.Label(), err, kept)
	}
	for _, step := range []func() error{
		func() error { return writeDeterministicMetadata(work, t.Dir(), in.epoch, a.Relations()) },
		func() error { return RecordDigests(ctx, work) },
		func() error { return recordPackages(ctx, work) },
		// Every build is checked for what must not ship, and gets its SBOM.
		func() error { return checkClean(ctx, filepath.Join(work, rootfsFile)) },
		func() error { return writeSBOM(ctx, a, t, work, in.epoch) },
	} {
		if err := step(); err != nil {
			return fmt.Errorf("build %s: %w", t.Label(), err)
		}
	}
	return nil
}

// buildInputs is what a container build is made from: the variant's
// template, the tool's version, SOURCE_DATE_EPOCH, and the hash of all of
// it with the appliance folder.
type buildInputs struct {
	template []byte
	tool     string
	epoch    int64
	hash     string
}

// inputs hashes everything the build of t depends on (see inputsHash).
func inputs(ctx context.Context, a *appliance.Appliance, t Target, opts Options) (*buildInputs, error) {
	if err := opts.resolve(&t); err != nil {
		return nil, err
	}
	var in buildInputs
	var err error
	if in.tool, err = toolVersion(ctx, opts.Distrobuilder); err != nil {
		return nil, err
	}
	if in.epoch, err = sourceDateEpoch(); err != nil {
		return nil, fmt.Errorf("build %s: %w", a.Name, err)
	}
	// The merged template (the variant's) stands for the base: a changed
	// base is a changed input.
	if in.template, err = a.VariantTemplate(t.Variant); err != nil {
		return nil, fmt.Errorf("build %s: %w", a.Name, err)
	}
	in.hash, err = inputsHash(a.Dir, in.tool, t.Arch, opts.Compression, fmt.Sprint("reproducible-1", squashfsOptions, in.epoch), string(in.template))
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", a.Name, err)
	}
	return &in, nil
}

// inputsHash hashes everything a build depends on: every file of the
// appliance folder (names and contents) and parts (the tool version,
// arch, compression, template).
func inputsHash(dir string, parts ...string) (string, error) {
	h := digest.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%s\x00", p)
	}
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(data))
		h.Write(data)
	}
	return digest.Hex(h), nil
}

// upToDate reports whether the target's folder holds outputs built from
// inputs.
func upToDate(t Target, inputs string) bool {
	r, err := readRecord(t)
	return err == nil && r.Inputs == inputs && t.built() == nil
}

// readRecord reads the target's build.json.
func readRecord(t Target) (*record, error) {
	data, err := os.ReadFile(t.file(recordFile))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", t.file(recordFile), err)
	}
	return &r, nil
}

// samePackages reports whether two build folders recorded the same
// installed package versions.
func samePackages(a, b string) bool {
	pa, err1 := os.ReadFile(filepath.Join(a, packagesFile))
	pb, err2 := os.ReadFile(filepath.Join(b, packagesFile))
	return err1 == nil && err2 == nil && bytes.Equal(pa, pb)
}
