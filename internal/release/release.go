// Package release is the release pipeline: for each appliance, each of
// its targets (variant × architecture, builder.Targets) is checked for a
// due build, built, compared with the registry, gated (launched in Incus
// and checked) and, once every target of the appliance is ready,
// published; then the registry is pruned. An appliance goes out whole or
// not at all: a target that fails its gate or its build holds back every
// other target of that appliance, while the other appliances still go
// out. Each target ends with an Outcome.
//
// The pipeline runs over small interfaces — a Builder (Builds:
// internal/builder), a Gate (Incus: internal/gate) and a Registry
// (*registry.Registry) — so that its rules are tested with fakes.
package release

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/gate"
	"github.com/incus-appliance/registry/internal/registry"
)

// Outcome is what a release did with one target.
type Outcome string

const (
	// Released: built (or kept), gated and published.
	Released Outcome = "released"
	// Unchanged: nothing new to publish (the registry has the same image).
	Unchanged Outcome = "unchanged"
	// GateFailed: the build failed a gate check; nothing of its
	// appliance is published.
	GateFailed Outcome = "gate-failed"
	// BuildFailed: the build failed; nothing of its appliance is
	// published.
	BuildFailed Outcome = "build-failed"
	// NotReleased: ready, but held back because another target of its
	// appliance failed.
	NotReleased Outcome = "not-released"
	// WouldRebuild and UpToDate are a dry run's: a build is due, or not.
	WouldRebuild Outcome = "would-rebuild"
	UpToDate     Outcome = "up-to-date"
)

// Failed reports whether the outcome holds back its appliance.
func (o Outcome) Failed() bool { return o == GateFailed || o == BuildFailed }

// Item is what the release did with one target.
type Item struct {
	Name string `json:"name"`
	// Variant is the appliance variant ("" for the default one).
	Variant string  `json:"variant,omitempty"`
	Arch    string  `json:"arch"`
	Outcome Outcome `json:"outcome"`
	// Reasons say why it was built (or not) and why it went out (or not).
	Reasons []string `json:"reasons,omitempty"`
	// Build is what the build step did: built, up to date, or rebuilt
	// with nothing changed.
	Build       string                  `json:"build,omitempty"`
	Gate        *gate.Report            `json:"gate,omitempty"`
	GateSkipped bool                    `json:"gate_skipped,omitempty"`
	Published   *registry.PublishResult `json:"published,omitempty"`
	// Error is why the build failed (build-failed).
	Error string `json:"error,omitempty"`

	target builder.Target
	// ready is the request that publishes the target once its appliance
	// may go out.
	ready *registry.PublishRequest
}

func newItem(t builder.Target) *Item {
	it := &Item{Name: t.Name, Arch: t.Arch, target: t}
	if !t.IsDefault() {
		it.Variant = t.Variant
	}
	return it
}

// Label names the item: NAME/ARCH, or NAME/VARIANT/ARCH.
func (it *Item) Label() string { return it.target.Label() }

// Result is a release's outcome, target by target.
type Result struct {
	Items  []*Item               `json:"items"`
	Pruned *registry.PruneResult `json:"pruned,omitempty"`
	DryRun bool                  `json:"dry_run"`

	changed bool
}

// Changed reports whether the release changed the catalog.
func (r *Result) Changed() bool { return r.changed }

// Err is the release's failure, nil when nothing failed: every failed
// gate and build, in one line.
func (r *Result) Err() error {
	var gates, builds []string
	for _, it := range r.Items {
		switch it.Outcome {
		case GateFailed:
			f := it.Gate.Failed()
			gates = append(gates, fmt.Sprintf("%s failed the gate: %s: %s", it.Label(), f.Name, f.Detail))
		case BuildFailed:
			builds = append(builds, it.Error)
		}
	}
	var msgs []string
	if len(gates) > 0 {
		msgs = append(msgs, strings.Join(gates, "; ")+" (nothing of it published; report: BUILD-DIR/NAME/ARCH/gate.json)")
	}
	if len(builds) > 0 {
		msgs = append(msgs, strings.Join(builds, "; ")+" (nothing of it published)")
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Options say how a release runs.
type Options struct {
	// BuildDir is the build folder (builder.Target.Root).
	BuildDir string
	// DryRun says what would be built and why; nothing is built, gated
	// or published.
	DryRun bool
	// SkipGate publishes without launching the builds (each one warned).
	SkipGate bool
	// DeltaDepth is how many of the product's last versions a new version
	// gets a delta from (0: none).
	DeltaDepth int
	// Keep, when above 0 and the catalog changed, prunes the registry to
	// the newest Keep versions of each product, with Grace.
	Keep  int
	Grace time.Duration
	// Note, if set, receives a line per step ("build NAME/ARCH: ...",
	// "gate NAME/ARCH: ..."); Warn what must not go unseen (a gate
	// skipped, files inspected again).
	Note, Warn func(line string)
	// Upload, if set, reports the progress of uploads.
	Upload func(path string, done, total int64)
	// Appliances, if set, loads an appliance's definition by name: a
	// published provider's, for a consumer's stack gate (stack.go).
	Appliances func(name string) (*appliance.Appliance, error)
}

// Pipeline is a release: its parts and options.
type Pipeline struct {
	Builder  Builder
	Gate     Gate
	Registry Registry
	Options

	// fresh are the providers' builds released so far in this run.
	fresh []freshBuild
}

// Run releases the appliances for arches (those each one lists), one
// appliance after the other, then prunes. An error means the release
// could not go on (a gate that cannot run, a registry that refuses);
// what failed a gate or a build is in the Result (Err).
func (p *Pipeline) Run(ctx context.Context, apps []*appliance.Appliance, arches []string) (*Result, error) {
	res := &Result{DryRun: p.DryRun}
	for _, a := range apps {
		targets, _ := builder.Targets(p.BuildDir, a, nil, arches)
		var items []*Item
		for _, t := range targets {
			it, err := p.prepare(ctx, a, t)
			if err != nil {
				return nil, err
			}
			items = append(items, it)
		}
		res.Items = append(res.Items, items...)
		changed, err := p.publish(ctx, a, items)
		if err != nil {
			return nil, err
		}
		res.changed = res.changed || changed
	}
	if res.changed && p.Keep > 0 {
		var err error
		if res.Pruned, err = p.Registry.Prune(ctx, registry.PruneOptions{Keep: p.Keep, Grace: p.Grace}); err != nil {
			return nil, fmt.Errorf("release: published, then prune failed: %w", err)
		}
	}
	return res, nil
}

// publish sends out the ready items of appliance a, all of them, or none
// when one of its targets failed. changed is true when the catalog
// changed.
func (p *Pipeline) publish(ctx context.Context, a *appliance.Appliance, items []*Item) (changed bool, err error) {
	var failed *Item
	for _, it := range items {
		if it.Outcome.Failed() && failed == nil {
			failed = it
		}
	}
	for _, it := range items {
		switch {
		case it.ready == nil:
			continue
		case failed != nil:
			it.Outcome, it.Reasons = NotReleased, append(it.Reasons, failed.heldBack())
			continue
		}
		results, published, err := Publish(ctx, p.Registry, a.Name, []registry.PublishRequest{*it.ready}, p.publishOptions(false))
		if err != nil {
			return changed, err
		}
		it.Outcome, it.Published, changed = Released, results[0], changed || published
		p.released(a, it)
	}
	return changed, nil
}

// heldBack says why a failed item holds back the others.
func (it *Item) heldBack() string {
	if it.Outcome == BuildFailed {
		return "another architecture failed to build"
	}
	return "another architecture failed the gate"
}

func (p *Pipeline) publishOptions(dryRun bool) PublishOptions {
	return PublishOptions{DryRun: dryRun, DeltaDepth: p.DeltaDepth, Upload: p.Upload, Warn: p.Warn}
}

func (p *Pipeline) note(format string, args ...any) {
	if p.Note != nil {
		p.Note(fmt.Sprintf(format, args...))
	}
}

func (p *Pipeline) warn(format string, args ...any) {
	if p.Warn != nil {
		p.Warn(fmt.Sprintf(format, args...))
	}
}
