package release

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/gate"
	"github.com/incus-appliance/registry/internal/osarch"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/relations"
)

// Builder decides and makes the builds of targets (Builds; a fake in
// tests).
type Builder interface {
	// Stale says whether a build of t is due, and why.
	Stale(ctx context.Context, a *appliance.Appliance, t builder.Target) (*builder.Staleness, error)
	// Build builds t (force: even from unchanged inputs), reporting its
	// steps to progress.
	Build(ctx context.Context, a *appliance.Appliance, t builder.Target, force bool, progress func(step string)) (*builder.Result, error)
	// Request describes the build of t for publishing.
	Request(ctx context.Context, a *appliance.Appliance, t builder.Target) (registry.PublishRequest, error)
}

// Gate launches the build of a target and checks it (Incus; a fake in
// tests). An error means the gate could not run.
// providers, for a consumer, are launched and wired to it first (the
// stack gate).
type Gate interface {
	Check(ctx context.Context, a *appliance.Appliance, t builder.Target, req registry.PublishRequest, providers []gate.Provider, progress func(string)) (*gate.Report, error)
}

// Registry is where a release publishes (*registry.Registry), and where
// a consumer's gate finds its published providers.
type Registry interface {
	Publish(ctx context.Context, req registry.PublishRequest) (*registry.PublishResult, error)
	Prune(ctx context.Context, opts registry.PruneOptions) (*registry.PruneResult, error)
	ApplianceImages(ctx context.Context) ([]relations.Image, error)
	FetchImage(ctx context.Context, fingerprint, dir string) (metadata, root string, err error)
}

// Builds is the Builder of internal/builder: builds with Options (a
// rebuild that installed the same package versions keeps the previous
// build), package updates asked of Archive (none when nil).
type Builds struct {
	Options builder.Options
	Archive builder.Archive
	// Hashing, if set, reports the progress of reading a build's files.
	Hashing func(path string, done, total int64)
}

func (b Builds) Stale(ctx context.Context, a *appliance.Appliance, t builder.Target) (*builder.Staleness, error) {
	return builder.CheckStale(ctx, a, t, b.Options, b.Archive)
}

func (b Builds) Build(ctx context.Context, a *appliance.Appliance, t builder.Target, force bool, progress func(string)) (*builder.Result, error) {
	o := b.Options
	o.Force, o.KeepUnchanged, o.Progress = force, true, progress
	return builder.Container(ctx, a, t, o)
}

func (b Builds) Request(ctx context.Context, a *appliance.Appliance, t builder.Target) (registry.PublishRequest, error) {
	return builder.Request(ctx, a, t, builder.FileOptions{Progress: b.Hashing})
}

// Incus is the Gate of internal/gate: it launches a build in the local
// Incus daemon, on this host's architecture only, and saves the report
// beside the build (gate.ReportFileName).
type Incus struct{}

func (Incus) Check(ctx context.Context, a *appliance.Appliance, t builder.Target, req registry.PublishRequest, providers []gate.Provider, progress func(string)) (*gate.Report, error) {
	if host := osarch.Host(); t.Arch != host {
		return nil, fmt.Errorf("gate %s: this %s host cannot launch a %s build: release it on a %s host, or pass --skip-gate", t.Label(), host, t.Arch, t.Arch)
	}
	rep, err := gate.Run(ctx, gate.Options{Appliance: a, Arch: t.Arch, Metadata: req.MetadataPath, Rootfs: req.RootPath, Progress: progress, Providers: providers})
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", t.Label(), err)
	}
	if err := os.MkdirAll(t.Dir(), 0o755); err != nil { // a re-gated consumer's
		return nil, err
	}
	return rep, rep.Save(t.Dir())
}

// PublishOptions say how Publish publishes.
type PublishOptions struct {
	// DryRun checks and says what would be published; nothing changes.
	DryRun bool
	// DeltaDepth is how many of the product's last versions a new version
	// gets a delta from (registry.PublishRequest.DeltaDepth; 0: none).
	DeltaDepth int
	// Upload, if set, reports the progress of uploads.
	Upload func(path string, done, total int64)
	// Warn, if set, is told when a request's files were inspected again
	// (they changed behind their digest record).
	Warn func(line string)
}

// Publish publishes reqs as appliance name (with DryRun: checks them),
// one result each: the step `publish NAME` and a release share. changed
// is true when the catalog changed.
func Publish(ctx context.Context, reg Registry, name string, reqs []registry.PublishRequest, o PublishOptions) (results []*registry.PublishResult, changed bool, err error) {
	for _, req := range reqs {
		req.DryRun, req.DeltaDepth, req.Progress = o.DryRun, o.DeltaDepth, o.Upload
		res, err := reg.Publish(ctx, req)
		if errors.Is(err, registry.ErrUnconditionalStore) {
			return nil, false, fmt.Errorf("publish %s: %w; use a store that supports them (AWS S3, MinIO, Cloudflare R2) or pass --allow-unconditional-store if only one publisher ever writes", name, err)
		}
		if err != nil {
			return nil, false, fmt.Errorf("publish %s: %w", name, err)
		}
		if res.Reinspected != "" && o.Warn != nil {
			o.Warn(res.Reinspected + "; the files were inspected again and what they hold was published")
		}
		results = append(results, res)
		changed = changed || res.Changed && !res.DryRun
	}
	return results, changed, nil
}
