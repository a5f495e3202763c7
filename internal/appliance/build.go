package appliance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/osarch"

	"github.com/incus-appliance/registry/internal/aptcache"
	"github.com/incus-appliance/registry/internal/catalog"
	"gopkg.in/yaml.v3"
)

// TemplateName is the appliance's own part of the distrobuilder template
// (its overlay on the base).
const TemplateName = "image.yaml"

// MergedTemplateName is the template distrobuilder built from (base +
// overlay), kept beside the build log.
const MergedTemplateName = "template.yaml"

// BuildOptions control Build.
type BuildOptions struct {
	// OutDir receives OutDir/NAME/ARCH/{incus.tar.xz,rootfs.squashfs}.
	OutDir string
	// Arch is the canonical architecture to build.
	Arch string
	// Compression of the squashfs: "xz" (releases, the default) or a
	// faster "gzip"/"gzip-1", "zstd", "lzo" (tests). The metadata tarball
	// is always published as xz.
	Compression string
	// Force rebuilds even when the inputs did not change.
	Force bool
	// CacheDir keeps distrobuilder's work and download directories.
	CacheDir string
	// Distrobuilder is the binary (default "distrobuilder" on PATH).
	Distrobuilder string
	// Progress, if set, receives one line per build step.
	Progress func(step string)
	// KeepUnchanged keeps the previous outputs when a (forced) rebuild
	// from the same inputs installed the same package versions: nothing
	// changed but timestamps, so there is nothing new to publish.
	KeepUnchanged bool
	// Variant is the appliance variant to build (default: "default");
	// another variant's outputs go to OutDir/NAME/VARIANT/ARCH.
	Variant string
}

// BuildResult is what Build produced.
type BuildResult struct {
	Dir, Metadata, Rootfs string
	// Disk is the VM disk (BuildVM), or "".
	Disk string
	// Skipped is true when the inputs had not changed since the last
	// build (nothing was run).
	Skipped bool
	// Unchanged is true when KeepUnchanged kept the previous outputs
	// after a rebuild that changed nothing.
	Unchanged bool
	Inputs    string // hash of the inputs
	Log       string // the build log
}

// record is .build/NAME/ARCH/build.json: what the outputs were built from.
type record struct {
	Inputs        string    `json:"inputs"`
	Distrobuilder string    `json:"distrobuilder"`
	Compression   string    `json:"compression"`
	Built         time.Time `json:"built"`
}

// BuildDirOf is the folder of the build of name for arch.
func BuildDirOf(outDir, name, arch string) string {
	return filepath.Join(outDir, name, arch)
}

// Paths returns where Build puts an appliance's outputs for arch.
func Paths(outDir, name, arch string) (dir, metadata, rootfs string) {
	dir = BuildDirOf(outDir, name, arch)
	return dir, filepath.Join(dir, "incus.tar.xz"), filepath.Join(dir, "rootfs.squashfs")
}

// resolve makes the folders absolute (distrobuilder runs in the appliance
// folder) and fills in the distrobuilder command.
func (o *BuildOptions) resolve() error {
	for _, p := range []*string{&o.OutDir, &o.CacheDir} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}
	if o.Distrobuilder == "" {
		o.Distrobuilder = "distrobuilder"
	}
	return nil
}

// Build runs distrobuilder for one architecture, unless the inputs (the
// appliance folder, the tool's version, the architecture and compression)
// are those of the outputs already there. The log is kept next to the
// outputs; a failure names the step that failed.
func Build(ctx context.Context, a *Appliance, opts BuildOptions) (*BuildResult, error) {
	if opts.Compression == "" {
		opts.Compression = "xz"
	}
	if err := opts.resolve(); err != nil {
		return nil, err
	}
	karch, ok := osarch.Kernel(opts.Arch)
	if !ok {
		return nil, fmt.Errorf("build %s: unsupported architecture %q", a.Name, opts.Arch)
	}
	// The template distrobuilder gets (base + overlay, plus the
	// variant's additions); a is the variant from here on (its name is
	// its build folder, NAME or NAME/VARIANT).
	va, tmpl, err := variantBuild(a, opts.Variant)
	if err != nil {
		return nil, err
	}
	in, err := inputs(ctx, a, opts)
	if err != nil {
		return nil, err
	}
	a = va
	dir, meta, root := Paths(opts.OutDir, a.Name, opts.Arch)
	res := &BuildResult{Dir: dir, Metadata: meta, Rootfs: root, Log: filepath.Join(dir, "build.log"), Inputs: in}
	version, err := toolVersion(ctx, opts.Distrobuilder)
	if err != nil {
		return nil, err
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", a.Name, err)
	}
	if !opts.Force && upToDate(dir, res.Inputs) {
		res.Skipped = true
		return res, nil
	}

	// Build into a fresh work folder; the outputs replace the old ones
	// only when everything succeeded.
	if err := os.MkdirAll(filepath.Join(opts.OutDir, a.Name), 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(filepath.Join(opts.OutDir, a.Name), "."+opts.Arch+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	logPath := filepath.Join(work, "build.log")
	// The template distrobuilder builds, kept beside the build log.
	tmplPath := filepath.Join(work, MergedTemplateName)
	if err := os.WriteFile(tmplPath, tmpl, 0o644); err != nil {
		return nil, err
	}
	if err := runDistrobuilder(ctx, a, opts, karch, work, logPath, tmplPath, epoch); err != nil {
		kept := filepath.Join(opts.OutDir, a.Name, opts.Arch+".failed.log")
		_ = os.Rename(logPath, kept)
		return nil, fmt.Errorf("build %s/%s: %w (log: %s)", a.Name, opts.Arch, err, kept)
	}
	if err := writeDeterministicMetadata(work, dir, epoch); err != nil {
		return nil, fmt.Errorf("build %s/%s: %w", a.Name, opts.Arch, err)
	}
	if err := RecordDigests(ctx, work); err != nil {
		return nil, fmt.Errorf("build %s/%s: %w", a.Name, opts.Arch, err)
	}
	if err := recordPackages(ctx, work); err != nil {
		return nil, fmt.Errorf("build %s/%s: %w", a.Name, opts.Arch, err)
	}
	// Every build is checked for what must not ship, and gets its SBOM.
	if err := CheckClean(ctx, filepath.Join(work, "rootfs.squashfs")); err != nil {
		return nil, fmt.Errorf("build %s/%s: %w", a.Name, opts.Arch, err)
	}
	if err := writeSBOM(ctx, a, opts.Arch, work); err != nil {
		return nil, fmt.Errorf("build %s/%s: SBOM: %w", a.Name, opts.Arch, err)
	}
	if opts.KeepUnchanged && samePackages(dir, work) && upToDate(dir, res.Inputs) {
		res.Skipped, res.Unchanged = true, true
		return res, nil
	}
	rec, _ := json.MarshalIndent(record{Inputs: res.Inputs, Distrobuilder: version, Compression: opts.Compression, Built: time.Now().UTC()}, "", "  ")
	if err := os.WriteFile(filepath.Join(work, "build.json"), rec, 0o644); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.Chmod(work, 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(work, dir); err != nil {
		return nil, err
	}
	return res, nil
}

// inputs is the hash of everything the build of a for opts.Arch depends
// on (see inputsHash).
func inputs(ctx context.Context, a *Appliance, opts BuildOptions) (string, error) {
	if opts.Distrobuilder == "" {
		opts.Distrobuilder = "distrobuilder"
	}
	if opts.Compression == "" {
		opts.Compression = "xz"
	}
	version, err := toolVersion(ctx, opts.Distrobuilder)
	if err != nil {
		return "", err
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return "", fmt.Errorf("build %s: %w", a.Name, err)
	}
	// The merged template (the variant's) stands for the base: a changed
	// base is a changed input.
	_, tmpl, err := variantBuild(a, opts.Variant)
	if err != nil {
		return "", err
	}
	h, err := inputsHash(a.Dir, version, opts.Arch, opts.Compression, fmt.Sprint("reproducible-1", squashfsOptions, epoch), string(tmpl))
	if err != nil {
		return "", fmt.Errorf("build %s: %w", a.Name, err)
	}
	return h, nil
}

// samePackages reports whether two build folders recorded the same
// installed package versions.
func samePackages(a, b string) bool {
	pa, err1 := os.ReadFile(filepath.Join(a, PackagesFile))
	pb, err2 := os.ReadFile(filepath.Join(b, PackagesFile))
	return err1 == nil && err2 == nil && bytes.Equal(pa, pb)
}

// stepRe picks distrobuilder's step messages out of its log; errRe its
// final error.
var (
	stepRe = regexp.MustCompile(`level=(info|error) msg="([^"]+)"`)
	errRe  = regexp.MustCompile(`level=error msg="[^"]*" err="((?:[^"\\]|\\.)*)"`)
)

func runDistrobuilder(ctx context.Context, a *Appliance, opts BuildOptions, karch, work, logPath, tmplPath string, epoch int64) error {
	return runDistrobuilderArgs(ctx, a, opts, work, logPath, tmplPath, epoch, func(cache string) []string {
		return []string{
			"--cache-dir", filepath.Join(cache, "work", strings.ReplaceAll(a.Name, "/", "-")+"-"+opts.Arch),
			"build-incus", tmplPath, work,
			"--type", "split", "--compression", opts.Compression,
			"--sources-dir", filepath.Join(cache, "sources"),
			"-o", "image.architecture=" + karch,
			"-o", "image.serial=" + time.Now().UTC().Format("20060102_1504"),
		}
	})
}

// runDistrobuilderArgs runs distrobuilder with the arguments mkArgs makes
// from the cache folder, logging to logPath and reporting its steps. The
// template at tmplPath (the merged one, or the variant's) gets the
// reproducible-build cleanup appended in place (kept as it was handed
// over); relative paths in it resolve against the appliance folder.
func runDistrobuilderArgs(ctx context.Context, a *Appliance, opts BuildOptions, work, logPath, tmplPath string, epoch int64, mkArgs func(cache string) []string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	if err := writeReproducibleTemplate(tmplPath, tmplPath, epoch); err != nil {
		return err
	}
	cache := opts.CacheDir
	if cache == "" {
		cache = filepath.Join(opts.OutDir, ".cache")
	}
	args := mkArgs(cache)
	switch mirror, err := templateMirror(tmplPath); {
	case os.Getenv("APPLIANCE_MIRROR") != "": // an apt cache of your own
		args = append(args, "-o", "source.url="+os.Getenv("APPLIANCE_MIRROR"))
	case err == nil && strings.HasPrefix(mirror, "http://"):
		// Packages come through the shared download cache.
		dl, err := aptcache.Start(filepath.Join(cache, "debs"), mirror)
		if err != nil {
			return err
		}
		defer dl.Close()
		args = append(args, "-o", "source.url="+dl.URL())
	}
	if !catalog.IsDefaultVariant(opts.Variant) {
		args = append(args, "-o", "image.variant="+opts.Variant)
	}
	cmd := exec.CommandContext(ctx, opts.Distrobuilder, args...)
	cmd.Dir = a.Dir
	if cmd.Env, err = distrobuilderEnv(filepath.Join(work, ".bin"), epoch); err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Join(work, ".bin"))
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start distrobuilder: %w (install it with scripts/install-distrobuilder.sh)", err)
	}
	step, failure := "starting", ""
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if m := errRe.FindStringSubmatch(line); m != nil && failure == "" {
				failure = strings.ReplaceAll(m[1], `\"`, `"`)
			}
			if m := stepRe.FindStringSubmatch(line); m != nil && failure == "" && m[1] == "info" && m[2] != step {
				step = m[2]
				if opts.Progress != nil {
					opts.Progress(step)
				}
			}
		}
	}()
	err = cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		if failure == "" {
			failure = err.Error()
		}
		return fmt.Errorf("distrobuilder failed during step %q: %s", step, failure)
	}
	return nil
}

// templateMirror returns the template's source.url.
func templateMirror(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var t struct {
		Source struct {
			URL string `yaml:"url"`
		} `yaml:"source"`
	}
	if err := yaml.Unmarshal(data, &t); err != nil {
		return "", err
	}
	return t.Source.URL, nil
}

func toolVersion(ctx context.Context, bin string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("distrobuilder not usable (%v): install it with scripts/install-distrobuilder.sh", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// inputsHash hashes everything a build depends on: every file of the
// appliance folder (names and contents), the tool version, arch and
// compression.
func inputsHash(dir string, parts ...string) (string, error) {
	h := sha256.New()
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
	return hex.EncodeToString(h.Sum(nil)), nil
}

// upToDate reports whether dir holds outputs built from inputs.
func upToDate(dir, inputs string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "build.json"))
	if err != nil {
		return false
	}
	var r record
	if json.Unmarshal(data, &r) != nil || r.Inputs != inputs {
		return false
	}
	for _, f := range []string{"incus.tar.xz", "rootfs.squashfs"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// ErrNotBuilt is returned by Built when an architecture has no outputs.
var ErrNotBuilt = errors.New("not built")

// Built returns the metadata and root files of a finished build.
func Built(outDir, name, arch string) (metadata, rootfs string, err error) {
	dir, meta, root := Paths(outDir, name, arch)
	if !upToDateFiles(meta, root) {
		return "", "", fmt.Errorf("%s/%s: %w (no %s): run `publish build %s`", name, arch, ErrNotBuilt, dir, name)
	}
	return meta, root, nil
}

func upToDateFiles(files ...string) bool {
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return false
		}
	}
	return true
}
