// Command publish publishes Incus split images into a SimpleStreams
// registry (a local directory or an S3 bucket) and maintains it: list,
// verify, remove, prune, mirror.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/incus-appliance/registry/internal/location"
	"github.com/incus-appliance/registry/internal/registry"
)

// Exit codes scripts can rely on.
const (
	exitOK    = 0
	exitError = 1 // the operation failed, or verify found problems
	exitUsage = 2 // the command line is wrong
)

// CLI is the command line. `publish NAME ...` is the default command.
type CLI struct {
	Globals

	Publish  publishCmd  `cmd:"" default:"withargs" help:"Publish a split image (metadata tarball + root) as appliance NAME (the default command)."`
	List     listCmd     `cmd:"" help:"List the images Incus clients will see."`
	Verify   verifyCmd   `cmd:"" help:"Check every file, hash and fingerprint of the registry; exit 1 on any problem."`
	Remove   removeCmd   `cmd:"" help:"Remove an image (by fingerprint or alias) from the catalog; files stay until a prune."`
	Prune    pruneCmd    `cmd:"" help:"Keep the newest N versions per product and delete files nothing references any more."`
	Mirror   mirrorCmd   `cmd:"" help:"Copy a SimpleStreams server (https://, a directory, s3://) into the registry: files checked, then the catalog."`
	Build    buildCmd    `cmd:"" help:"Build appliances with distrobuilder into --build-dir (skipped when nothing changed)."`
	Release  releaseCmd  `cmd:"" help:"Build, test in Incus (the gate), publish and prune appliances in one go: for CI and cron."`
	Validate validateCmd `cmd:"" help:"Check appliance folders (appliance.yaml, profiles, template); all when no NAME is given."`
	SBOM     sbomCmd     `cmd:"" name:"sbom" help:"Print the SPDX SBOM (installed Debian packages) of a published image."`
	New      newCmd      `cmd:"" help:"Write a new appliance folder (appliance.yaml, image.yaml) that validates, builds and passes its health check."`
	Key      keyCmd      `cmd:"" help:"Signing keys for a signed catalog: generate one, export its public key."`
	Sign     signCmd     `cmd:"" help:"Sign the whole catalog again (new serials, a new expiry): from cron before it expires, to repair a half-signed registry, or with a new key."`
	// CheckUserData checks user-data for a cloud variant before launch.
	CheckUserData checkUserDataCmd `cmd:"" name:"check-user-data" help:"Check cloud-init user-data before launching a cloud variant with it (YAML, a mapping, a #cloud-config header: what cloud-init needs)."`
	// Provenance prints a published image's build provenance.
	Provenance provenanceCmd `cmd:"" help:"Print the build provenance of a published image: an in-toto Statement (SLSA Provenance v1) of its files, what it was built from and the gate report."`
}

// Globals are the flags every command takes.
type Globals struct {
	Bucket     location.Location `short:"b" default:"./registry" env:"PUBLISH_BUCKET" help:"Registry location: a directory, file:///abs/path or s3://bucket[/prefix]."`
	JSON       bool              `help:"Print the result as JSON on stdout."`
	Quiet      bool              `short:"q" help:"Print nothing on success."`
	NoProgress bool              `help:"Never show upload progress (it is shown only when stderr is a terminal)."`
	Verbose    bool              `short:"v" help:"Log what happens on stderr."`

	Appliances string `default:"appliances" placeholder:"DIR" env:"PUBLISH_APPLIANCES" help:"Folder of appliance folders (appliances/NAME)."`
	BuildDir   string `default:".build" placeholder:"DIR" env:"PUBLISH_BUILD_DIR" help:"Where builds go (DIR/NAME/ARCH) and publish takes them from."`

	location.AWS
	// AllowUnconditionalStore accepts a store that ignores conditional
	// writes (found by a probe when a registry is first written).
	AllowUnconditionalStore bool `help:"Publish even to a store that ignores conditional writes (safe only with a single publisher at a time)."`
	// CatalogShards is the number of catalog product files of a registry
	// created by this run (catalog/layout.go).
	CatalogShards int `name:"catalog-shards" env:"PUBLISH_CATALOG_SHARDS" placeholder:"N" help:"When creating a registry: split its catalog into N product files (streams/v1/images-K.json), so that a publish rewrites one small file; for registries of thousands of products. An existing registry keeps the count it was created with (0: take it)."`
	// CloudFrontDistribution is told to drop its cached catalog files
	// after publish, remove or prune changed the catalog.
	CloudFrontDistribution string `name:"cloudfront-distribution" env:"PUBLISH_CLOUDFRONT_DISTRIBUTION" placeholder:"ID" help:"CloudFront distribution serving the bucket: after a catalog change, invalidate its cached streams/v1/index.json and images.json (needs cloudfront:CreateInvalidation; exit 1 if that fails, the change itself being committed)."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code. On failure it
// prints exactly one line on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	var cli CLI
	exited := false
	parser, err := kong.New(&cli,
		kong.Name("publish"),
		kong.Description("Publish Incus appliance images into a SimpleStreams registry."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { exited, code = true, c }),
		kong.UsageOnError(),
		kong.Vars{"signing_key_file": defaultKeyFile, "delta_depth": strconv.Itoa(registry.DefaultDeltaDepth)},
	)
	if err != nil {
		panic(err) // the CLI struct is wrong: a programming error
	}
	kctx, err := parser.Parse(args)
	if exited {
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "publish: error: %v (see publish --help)\n", err)
		return exitUsage
	}
	level := slog.LevelWarn
	if cli.Verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	out := newOutput(stdout, stderr, cli.Globals)
	kctx.BindTo(ctx, (*context.Context)(nil))
	kctx.Bind(logger, out, &cli.Globals)
	if err := kctx.Run(); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "publish: error: %v\n", err)
			return exitUsage
		}
		fmt.Fprintf(stderr, "publish: error: %s\n", oneLine(err.Error()))
		return exitError
	}
	return exitOK
}

// usageError marks a command-line mistake found after parsing.
type usageError struct{ error }
