package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/incus-appliance/registry/internal/cdn"
	"github.com/incus-appliance/registry/internal/location"
)

// invalidateTimeout bounds the CloudFront call after a commit: the change
// is live either way, a hung API must not hang the publisher.
const invalidateTimeout = time.Minute

// Validate is called by the command-line parser, once, before any command
// runs: it rejects a --cloudfront-distribution that cannot work.
func (g *Globals) Validate() error {
	id := g.CloudFrontDistribution
	if id == "" {
		return nil
	}
	if !isDistributionID(id) {
		return fmt.Errorf("--cloudfront-distribution %q: a distribution ID is uppercase letters and digits, e.g. E2QWRUHAPOMQZL", id)
	}
	if g.Bucket.Kind != location.S3 {
		return fmt.Errorf("--cloudfront-distribution needs an s3:// bucket, not %s", g.Bucket)
	}
	return nil
}

// isDistributionID reports whether id looks like a CloudFront
// distribution ID (as opposed to an ARN or a domain name).
func isDistributionID(id string) bool {
	if len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// invalidateCatalog asks the CloudFront distribution (if any) to drop its
// cached catalog files, after a command changed the catalog. The error
// says that the change itself is committed.
func invalidateCatalog(ctx context.Context, g *Globals, log *slog.Logger) error {
	if g.CloudFrontDistribution == "" {
		return nil
	}
	var opts []func(*config.LoadOptions) error
	if g.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(g.Profile))
	}
	ctx, cancel := context.WithTimeout(ctx, invalidateTimeout)
	defer cancel()
	paths := cdn.CatalogPaths(g.Bucket.Prefix)
	if err := cdn.Invalidate(ctx, g.CloudFrontDistribution, paths, opts...); err != nil {
		return fmt.Errorf("committed, but the CDN still serves the old catalog until its cache time runs out: %w", err)
	}
	log.Info("invalidated", "distribution", g.CloudFrontDistribution, "paths", paths)
	return nil
}
