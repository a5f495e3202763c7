package builder

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/aptcache"
	"github.com/incus-appliance/registry/internal/osarch"
)

// stepRe picks distrobuilder's step messages out of its log; errRe its
// final error.
var (
	stepRe = regexp.MustCompile(`level=(info|error) msg="([^"]+)"`)
	errRe  = regexp.MustCompile(`level=error msg="[^"]*" err="((?:[^"\\]|\\.)*)"`)
)

// runDistrobuilder runs distrobuilder with args (its command and what it
// takes) for target t, logging to logPath and reporting its steps. It adds
// the cache folders (the work one named after t and cacheKind, "" or
// "vm"), the architecture, the package mirror and the variant. The
// template at tmplPath (the variant's) gets the reproducible-build
// cleanup appended in place (kept as it was handed over); relative paths
// in it resolve against the appliance folder.
func runDistrobuilder(ctx context.Context, a *appliance.Appliance, t Target, opts Options, logPath, tmplPath string, epoch int64, cacheKind string, args ...string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	if err := writeReproducibleTemplate(tmplPath, tmplPath, epoch); err != nil {
		return err
	}
	work := strings.ReplaceAll(t.variantName(), "/", "-")
	if cacheKind != "" {
		work += "-" + cacheKind
	}
	karch, _ := osarch.Kernel(t.Arch)
	args = append([]string{"--cache-dir", filepath.Join(opts.CacheDir, "work", work+"-"+t.Arch)}, args...)
	args = append(args, "--sources-dir", filepath.Join(opts.CacheDir, "sources"), "-o", "image.architecture="+karch)
	switch mirror, err := templateMirror(tmplPath); {
	case os.Getenv("APPLIANCE_MIRROR") != "": // an apt cache of your own
		args = append(args, "-o", "source.url="+os.Getenv("APPLIANCE_MIRROR"))
	case err == nil && strings.HasPrefix(mirror, "http://"):
		// Packages come through the shared download cache.
		dl, err := aptcache.Start(filepath.Join(opts.CacheDir, "debs"), mirror)
		if err != nil {
			return err
		}
		defer dl.Close()
		args = append(args, "-o", "source.url="+dl.URL())
	}
	if !t.IsDefault() {
		args = append(args, "-o", "image.variant="+t.Variant)
	}
	cmd := exec.CommandContext(ctx, opts.Distrobuilder, args...)
	cmd.Dir = a.Dir
	bin := filepath.Join(filepath.Dir(logPath), ".bin")
	if cmd.Env, err = distrobuilderEnv(bin, epoch); err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	return runLogged(cmd, logf, opts.Progress)
}

// runLogged runs distrobuilder's cmd, copying its output to log and its
// steps to progress; a failure names the step and distrobuilder's error.
// distrobuilder runs in a process group of its own, and cancelling cmd's
// context kills the whole group: the tools it started (debootstrap, apt,
// mksquashfs) stop with it instead of running on and holding its output
// open.
func runLogged(cmd *exec.Cmd, log io.Writer, progress func(string)) error {
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cancelled := false
	cmd.Cancel = func() error {
		cancelled = true
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Minute
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
			fmt.Fprintln(log, line)
			if m := errRe.FindStringSubmatch(line); m != nil && failure == "" {
				failure = strings.ReplaceAll(m[1], `\"`, `"`)
			}
			if m := stepRe.FindStringSubmatch(line); m != nil && failure == "" && m[1] == "info" && m[2] != step {
				step = m[2]
				if progress != nil {
					progress(step)
				}
			}
		}
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		if cancelled {
			return fmt.Errorf("distrobuilder stopped during step %q: the build was cancelled", step)
		}
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

// ValidateTemplate runs `distrobuilder validate` (bin) on the merged
// template of a, as a build would hand it over.
func ValidateTemplate(ctx context.Context, a *appliance.Appliance, bin string) error {
	tmpl, err := a.Template()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "appliance-template-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, templateFile)
	if err := os.WriteFile(path, tmpl, 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, "validate", path)
	cmd.Dir = a.Dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s merged with %s: distrobuilder validate: %s", a.BasePath(), filepath.Join(a.Dir, appliance.TemplateName), strings.Join(strings.Fields(string(msg)), " "))
	}
	return nil
}

// squashfsOptions are added to distrobuilder's mksquashfs command line
// (which it does not let a template change). -no-fragments gives every
// file its own blocks: with fragments, small files are packed together in
// build order, so one file added early shifts the content of every later
// fragment block and the delta to the next version grows to several per
// cent of the root; without them unchanged files compress to unchanged
// blocks wherever they land.
var squashfsOptions = []string{"-no-fragments"}

// distrobuilderEnv returns the environment distrobuilder runs in:
// SOURCE_DATE_EPOCH, and a PATH whose first folder (made in dir) holds a
// mksquashfs that calls the real one with squashfsOptions.
func distrobuilderEnv(dir string, epoch int64) ([]string, error) {
	real, err := exec.LookPath("mksquashfs")
	if err != nil {
		return nil, fmt.Errorf("mksquashfs not found (apt-get install squashfs-tools): %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	script := "#!/bin/sh\n# publish build: reproducible squashfs, small deltas (internal/build/distrobuilder.go)\nexec " +
		shellQuote(real) + ` "$@" ` + strings.Join(squashfsOptions, " ") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "mksquashfs"), []byte(script), 0o755); err != nil {
		return nil, err
	}
	return append(os.Environ(),
		fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch),
		"PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"),
	), nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
