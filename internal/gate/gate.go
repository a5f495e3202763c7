// Package gate decides whether a fresh appliance build may be published:
// it launches the build in a real Incus daemon and checks what a user of
// the appliance relies on — the health check passes, no systemd unit
// failed, nothing listens but the declared ports, the declared service
// runs unprivileged, no sshd and no getty, and eth0 got its IPv4 address
// by DHCP. The gate removes its instance and image when done.
package gate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/image"
)

// The checks, by name (as printed and in gate.json).
const (
	CheckLaunch    = "launch"
	CheckDHCP      = "dhcp"
	CheckBoot      = "systemd"
	CheckHealth    = "health"
	CheckPorts     = "ports"
	CheckService   = "service-user"
	CheckNoLogin   = "no-sshd-no-getty"
	ReportFileName = "gate.json"
)

// Check is one check's result.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// Report is what the gate found; Passed only when every check passed.
type Report struct {
	Appliance string    `json:"appliance"`
	Arch      string    `json:"arch"`
	Image     string    `json:"image"` // fingerprint of the tested build
	Passed    bool      `json:"passed"`
	Checks    []Check   `json:"checks"`
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"`
}

// Failed returns the first failed check (nil if none).
func (r *Report) Failed() *Check {
	for i := range r.Checks {
		if !r.Checks[i].Passed {
			return &r.Checks[i]
		}
	}
	return nil
}

// Marshal encodes the report as gate.json holds it.
func (r *Report) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(r, "", "  ")
	return append(data, '\n'), err
}

// Save writes the report as dir/gate.json.
func (r *Report) Save(dir string) error {
	data, err := r.Marshal()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ReportFileName), data, 0o644)
}

// Options say what to test and how.
type Options struct {
	Appliance        *appliance.Appliance
	Arch             string
	Metadata, Rootfs string
	// Host runs incus and HTTP requests (default: the incus CLI on PATH
	// and an HTTP client).
	Host Host
	// Poll is the wait between readiness probes (default 1 s).
	Poll time.Duration
	// BootTimeout bounds the wait for an address and a finished boot
	// (default 120 s); the health check has its own timeout.
	BootTimeout time.Duration
	// Progress, if set, receives one line per step.
	Progress func(string)
	// Providers, for a consumer appliance, are launched first and wired
	// to it before its checks (stack.go).
	Providers []Provider
}

// ErrNoDaemon means the gate could not run: no Incus daemon answered.
var ErrNoDaemon = errors.New("no Incus daemon reachable")

// Run launches the build and runs every check. An error means the gate
// could not run (no daemon, the image could not be imported); a build
// that does not pass is a Report with Passed false.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Host == nil {
		opts.Host = CLI{}
	}
	if opts.Poll == 0 {
		opts.Poll = time.Second
	}
	if opts.BootTimeout == 0 {
		opts.BootTimeout = 120 * time.Second
	}
	progress := func(format string, args ...any) {
		if opts.Progress != nil {
			opts.Progress(fmt.Sprintf(format, args...))
		}
	}
	a := opts.Appliance
	rep := &Report{Appliance: a.Name, Arch: opts.Arch, Started: time.Now().UTC()}
	defer func() { rep.Seconds = time.Since(rep.Started).Round(100 * time.Millisecond).Seconds() }()
	h := opts.Host
	if _, err := h.Incus(ctx, "info"); err != nil {
		return nil, fmt.Errorf("gate: %w (%v): start one (scripts/incus-daemon.sh start) or pass --skip-gate", ErrNoDaemon, err)
	}

	progress("importing the build into Incus")
	fp, imported, err := importImage(ctx, h, opts.Metadata, opts.Rootfs)
	if err != nil {
		return nil, fmt.Errorf("gate: %w", err)
	}
	rep.Image = fp
	if imported {
		defer cleanup(h, "image", "delete", fp)
	}
	inst := instanceName(a.Name)
	g := &run{ctx: ctx, h: h, opts: opts, inst: inst, rep: rep}
	var up []stackInstance
	if len(opts.Providers) > 0 {
		progress("launching the providers: %s", describeRelations(opts.Providers))
		var ok bool
		up, ok = g.launchProviders()
		defer stackCleanup(h, up)
		if !ok {
			return g.finish(), nil
		}
	}
	progress("launching %s", inst)
	if out, err := h.Incus(ctx, "launch", fp, inst); err != nil {
		g.add(CheckLaunch, false, "incus launch: %v %s", err, oneLine(out))
		cleanup(h, "delete", "--force", inst)
		return g.finish(), nil
	}
	defer cleanup(h, "delete", "--force", inst)
	g.add(CheckLaunch, true, "launched %s from %s", inst, short(fp))

	progress("waiting for the boot to finish and for an address")
	ip := g.checkDHCP()
	g.checkBoot()
	g.wire(up)
	progress("health check")
	g.checkHealth(ip)
	g.checkPorts()
	g.checkService()
	g.checkNoLogin()
	return g.finish(), nil
}

// run is one gate run's state.
type run struct {
	ctx  context.Context
	h    Host
	opts Options
	inst string
	rep  *Report
}

func (g *run) progress(format string, args ...any) {
	if g.opts.Progress != nil {
		g.opts.Progress(fmt.Sprintf(format, args...))
	}
}

func (g *run) add(name string, passed bool, format string, args ...any) {
	g.rep.Checks = append(g.rep.Checks, Check{Name: name, Passed: passed, Detail: fmt.Sprintf(format, args...)})
}

func (g *run) finish() *Report {
	g.rep.Passed = g.rep.Failed() == nil && len(g.rep.Checks) > 0
	return g.rep
}

// exec runs a shell command in the instance and returns its stdout.
func (g *run) exec(ctx context.Context, script string) (string, error) {
	return g.h.Incus(ctx, "exec", g.inst, "--", "sh", "-c", script)
}

// poll calls f every Poll until it returns true or timeout passes.
func (g *run) poll(timeout time.Duration, f func() bool) bool {
	ctx, cancel := context.WithTimeout(g.ctx, timeout)
	defer cancel()
	for {
		if f() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(g.opts.Poll):
		}
	}
}

func importImage(ctx context.Context, h Host, meta, root string) (fp string, imported bool, err error) {
	out, err := h.Incus(ctx, "image", "import", meta, root)
	if err != nil && strings.Contains(err.Error(), "same fingerprint already exists") {
		// The daemon holds this build already (copied from the
		// registry): test it, and leave it there.
		im, ierr := image.Inspect(ctx, meta, root, image.Options{})
		if ierr != nil {
			return "", false, ierr
		}
		return im.Fingerprint, false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("incus image import: %v", err)
	}
	m := regexp.MustCompile(`fingerprint: ([0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		return "", false, fmt.Errorf("incus image import printed no fingerprint: %q", oneLine(out))
	}
	return m[1], true, nil
}

func instanceName(app string) string {
	b := make([]byte, 3)
	rand.Read(b)
	name := "gate-" + app
	if len(name) > 50 {
		name = name[:50]
	}
	return name + "-" + hex.EncodeToString(b)
}

// cleanup runs an incus command that must happen even when the gate's
// context is cancelled.
func cleanup(h Host, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h.Incus(ctx, args...)
}

func short(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return fp
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
