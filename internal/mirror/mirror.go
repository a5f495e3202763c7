// Package mirror copies a SimpleStreams image server (ours, one written by
// incus-simplestreams, or one shaped like images.linuxcontainers.org) into
// a registry: it reads the source catalog (package simplestreams), selects
// what the filters and --keep ask for, and commits it with registry.Copy,
// which streams every file through its checks before the catalog names it.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/location"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/signing"
	"github.com/incus-appliance/registry/internal/simplestreams"
	"github.com/incus-appliance/registry/internal/store"
)

// Options control a mirror.
type Options struct {
	Filters []Filter
	// Keep, when > 0, copies only the newest Keep versions per product.
	Keep int
	// Keyring, when set, makes the mirror take only a signed source,
	// through its verified signatures (simplestreams.Trust).
	Keyring *signing.Keyring
	// IntoExisting lets the source's versions into products another
	// writer wrote (catalog/writer.go); each such version is reported.
	IntoExisting bool
	DryRun       bool
	// Progress, when set, is called while a file uploads.
	Progress func(key string, done, total int64)
}

// Failure is one version that could not be mirrored.
type Failure struct {
	Product string `json:"product"`
	Version string `json:"version"`
	Error   string `json:"error"`
}

// Joined is a version added to a product another writer wrote
// (Options.IntoExisting).
type Joined struct {
	Product string `json:"product"`
	Version string `json:"version"`
	Writer  string `json:"writer"`
}

// Report is the outcome of a mirror.
type Report struct {
	Source string `json:"source"`
	// SignedBy are the keys whose signatures the source's catalog was
	// taken through (none without Options.Keyring).
	SignedBy []string `json:"signed_by,omitempty"`
	// Versions are the versions selected; Copied, Unchanged and Failed
	// partition them.
	Versions  int `json:"versions"`
	Copied    int `json:"copied"`
	Unchanged int `json:"unchanged"`
	// Files and Bytes are what was transferred (in a dry run: would be).
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Skipped counts files already stored with the right digest.
	Skipped       int       `json:"skipped"`
	DroppedDeltas int       `json:"dropped_deltas"`
	Failed        []Failure `json:"failed"`
	// Joined are the copied versions that went into products another
	// writer wrote.
	Joined  []Joined `json:"into_existing"`
	DryRun  bool     `json:"dry_run"`
	Retries int      `json:"retries"`
}

// Run mirrors src into reg, as the writer catalog.MirrorWriter(src): it
// adds versions only to the products it wrote, unless opts.IntoExisting.
// The error is for what stops the whole mirror (an unreadable or invalid
// source catalog, the registry unreachable); versions that fail alone are
// in Report.Failed.
//
// The source catalog is checked whole first (simplestreams.Open), then
// copied one products file at a time: memory follows the largest products
// file, not the sum of them.
func Run(ctx context.Context, src simplestreams.Source, reg *registry.Registry, opts Options) (*Report, error) {
	rep := &Report{Source: src.String(), DryRun: opts.DryRun, Failed: []Failure{}, Joined: []Joined{}}
	cat, err := simplestreams.Open(ctx, src, simplestreams.Trust{Keyring: opts.Keyring})
	if err != nil {
		return nil, err
	}
	for _, fpr := range cat.SignedBy() {
		rep.SignedBy = append(rep.SignedBy, string(fpr))
	}
	by := catalog.Merger{Writer: catalog.MirrorWriter(src.String()), IntoExisting: opts.IntoExisting}
	for i := range cat.Len() {
		c, err := cat.Read(ctx, i)
		if err != nil {
			return rep, err
		}
		copies := Select(c, opts.Filters, opts.Keep)
		rep.Versions += len(copies)
		// The products file (tens of MB for images.linuxcontainers.org)
		// is not needed any more: give its memory back before the files
		// stream, so the peak is the larger of the two phases, not their
		// sum.
		c = nil
		debug.FreeOSMemory()
		results, retries, err := reg.Copy(ctx, registry.CopyRequest{
			Copies: copies, DryRun: opts.DryRun, Progress: opts.Progress, By: by, Open: src.Open,
		})
		rep.add(results, retries)
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// add counts the results of one copy.
func (rep *Report) add(results []registry.CopyResult, retries int) {
	rep.Retries += retries
	for _, r := range results {
		switch r.Status {
		case "copied":
			rep.Copied++
			if r.Joined != "" {
				rep.Joined = append(rep.Joined, Joined{r.Product, r.Version, r.Joined})
			}
		case "unchanged":
			rep.Unchanged++
		case "failed":
			rep.Failed = append(rep.Failed, Failure{r.Product, r.Version, r.Error})
		}
		rep.DroppedDeltas += len(r.DroppedDeltas)
		for _, f := range r.Files {
			if f.Uploaded {
				rep.Files++
				rep.Bytes += f.Size
			} else {
				rep.Skipped++
			}
		}
	}
}

// OpenSource opens a source given as an https:// URL, a directory,
// file:///path or s3://bucket[/prefix] (S3 settings from opts), every read
// bounded by stall. The function returned closes it.
func OpenSource(ctx context.Context, spec string, opts location.Options, stall time.Duration) (simplestreams.Source, func(), error) {
	if strings.HasPrefix(spec, "https://") {
		h, err := simplestreams.NewHTTPS(spec)
		if err != nil {
			return nil, nil, err
		}
		return simplestreams.Stalling(h, stall), func() {}, nil
	}
	if strings.HasPrefix(spec, "http://") {
		return nil, nil, fmt.Errorf("source %q: plain http is not accepted (catalogs carry the trust): use https://", spec)
	}
	loc, err := location.Parse(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("source: %w", err)
	}
	opts.Create = false
	s, err := location.Open(ctx, loc, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("source %s: %w", spec, err)
	}
	return simplestreams.Stalling(storeSource{s, loc.String()}, stall), func() { _ = s.Close() }, nil
}

// storeSource reads a source tree through a store.
type storeSource struct {
	s    store.Store
	name string
}

func (s storeSource) String() string { return s.name }

func (s storeSource) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	rc, info, err := s.s.Get(ctx, path)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", path, simplestreams.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return simplestreams.NewSized(rc, info.Size), nil
}
