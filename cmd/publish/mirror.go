package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/location"
	"github.com/incus-appliance/registry/internal/mirror"
	"github.com/incus-appliance/registry/internal/signing"
)

// mirrorMemoryLimit is the soft heap limit of a mirror (see Run). A limit
// below the live heap of a large products file (~150 MB for 66 MB of
// JSON) makes the collector run without pause: 3× the CPU of a dry run of
// 4 such files at 64 MiB, for no less memory.
const mirrorMemoryLimit = 192 << 20

type mirrorCmd struct {
	signingFlags `embed:""`

	Source       string        `arg:"" help:"SimpleStreams server to copy: https://HOST[/PATH] (trusting the system CAs or SSL_CERT_FILE), a directory, file:///abs/path or s3://bucket[/prefix]."`
	Filter       []string      `short:"f" placeholder:"KEY=VALUE" help:"Copy only matching products: arch=, os=, release=, variant= (exact), product= (glob over the product key). Repeat a key for alternatives; different keys must all match."`
	Keep         int           `default:"0" help:"Copy only the newest N versions of each product (0: all)."`
	Keyring      string        `placeholder:"FILE" help:"Take only a signed source, through its signatures: streams/v1/index.sjson and the .sjson products files it names, each signed by a key of FILE (an OpenPGP keyring, armoured or binary), not expired, each products file the one the signed index names. The unsigned .json files are not read. An unsigned, badly signed or expired source is refused, nothing written."`
	IntoExisting bool          `help:"Also add the source's versions to products another writer wrote (publish, a mirror of another source) or that record no writer (written before products recorded theirs; this mirror then records itself); each is reported. Without it they fail."`
	DryRun       bool          `short:"n" help:"Show what would be copied; change nothing."`
	Stall        time.Duration `default:"60s" help:"Fail a source read that makes no progress for this long."`
}

func (c *mirrorCmd) Run(ctx context.Context, g *Globals, out *output, log *slog.Logger) error {
	var filters []mirror.Filter
	for _, s := range c.Filter {
		f, err := mirror.ParseFilter(s)
		if err != nil {
			return usageError{err}
		}
		filters = append(filters, f)
	}
	if c.Keep < 0 {
		return usageError{fmt.Errorf("--keep must be 0 or more, got %d", c.Keep)}
	}
	var keyring *signing.Keyring
	if c.Keyring != "" {
		var err error
		if keyring, err = signing.ReadKeyring(c.Keyring); err != nil {
			return usageError{fmt.Errorf("--keyring: %w", err)}
		}
	}
	src, closeSrc, err := mirror.OpenSource(ctx, c.Source, location.Options{AWS: g.AWS}, c.Stall)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	defer closeSrc()
	// Bounded memory whatever the size of the files: two 8 MiB S3 parts
	// in flight, one products file of the source at a time, and a soft
	// limit the Go runtime keeps the heap under (GOMEMLIMIT wins when set).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(mirrorMemoryLimit)
	}
	reg, err := openChange(ctx, g, log, c.signingFlags, !c.DryRun, func(o *location.Options) { o.S3Concurrency, o.S3PartSize = 2, 8<<20 })
	if err != nil {
		return err
	}
	defer reg.Close()
	rep, err := mirror.Run(ctx, src, reg.Registry, mirror.Options{Filters: filters, Keep: c.Keep, Keyring: keyring, IntoExisting: c.IntoExisting, DryRun: c.DryRun, Progress: out.progressFunc("copying")})
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	err = reg.finish(ctx, "mirror", rep.Copied > 0 && !rep.DryRun, func() error {
		return out.result(rep, func(w io.Writer) {
			for _, f := range rep.Failed {
				fmt.Fprintf(w, "FAILED   %s version %s: %s\n", f.Product, f.Version, f.Error)
			}
			verb, added := "copied", "added"
			if rep.DryRun {
				verb, added = "would copy", "would be added"
			}
			if len(rep.SignedBy) > 0 {
				fmt.Fprintf(w, "source catalog verified: signed by %s\n", strings.Join(rep.SignedBy, ", "))
			}
			for _, j := range rep.Joined {
				fmt.Fprintf(w, "INTO     %s version %s: %s to a product %s wrote (--into-existing)\n", j.Product, j.Version, added, j.Writer)
			}
			fmt.Fprintf(w, "%d versions: %d %s (%d files, %s), %d unchanged, %d failed; %d files already there, %d deltas dropped (base not mirrored)\n",
				rep.Versions, rep.Copied, verb, rep.Files, humanBytes(rep.Bytes), rep.Unchanged, len(rep.Failed), rep.Skipped, rep.DroppedDeltas)
		})
	})
	if err != nil {
		return err
	}
	if len(rep.Failed) > 0 {
		f := rep.Failed[0]
		return fmt.Errorf("mirror: %d of %d versions failed (the others are committed; first: %s version %s: %s)", len(rep.Failed), rep.Versions, f.Product, f.Version, f.Error)
	}
	return nil
}
