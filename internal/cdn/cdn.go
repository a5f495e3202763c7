// Package cdn tells a CDN in front of a registry that its catalog changed:
// it invalidates the cached copies of the two catalog files on an AWS
// CloudFront distribution, so that clients see a publish at once instead
// of after the catalog's cache time.
//
// Credentials, region and endpoint come from the standard AWS chain; a
// test (or a CloudFront-compatible API) sets AWS_ENDPOINT_URL_CLOUDFRONT.
package cdn

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/incus-appliance/registry/internal/catalog"
)

// defaultRegion signs CloudFront requests when no region is configured:
// CloudFront is global, its API lives in us-east-1.
const defaultRegion = "us-east-1"

// CatalogPaths returns the viewer paths of the catalog files of a
// registry stored under prefix ("" for a whole bucket): index.json,
// images.json and, for a sharded registry, its product files (one
// wildcard path, which covers their signed forms too), then the signed
// forms of index.json and images.json. The distribution serves the bucket
// as is (no origin path), so a viewer path is "/" followed by the object
// key.
func CatalogPaths(prefix string) []string {
	base := "/"
	if p := strings.Trim(prefix, "/"); p != "" {
		base += p + "/"
	}
	return []string{base + catalog.IndexPath, base + catalog.ImagesPath, base + catalog.ShardPathPattern,
		base + catalog.SignedIndexPath, base + catalog.SignedPath(catalog.ImagesPath)}
}

// Invalidate asks CloudFront distribution distributionID to drop its cached
// copies of paths. It returns once CloudFront accepted the request; the
// edges drop the copies within seconds to minutes. opts tune how the AWS
// configuration is loaded (e.g. config.WithSharedConfigProfile).
func Invalidate(ctx context.Context, distributionID string, paths []string, opts ...func(*config.LoadOptions) error) error {
	if distributionID == "" {
		return errors.New("invalidate: no distribution ID")
	}
	if len(paths) == 0 {
		return nil
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fmt.Errorf("invalidate distribution %s: load AWS configuration: %w", distributionID, err)
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	_, err = cloudfront.NewFromConfig(cfg).CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{
		DistributionId: aws.String(distributionID),
		InvalidationBatch: &types.InvalidationBatch{
			CallerReference: aws.String(callerReference()),
			Paths:           &types.Paths{Quantity: aws.Int32(int32(len(paths))), Items: paths},
		},
	})
	if err == nil {
		return nil
	}
	var denied *types.AccessDenied
	var missing *types.NoSuchDistribution
	switch {
	case errors.As(err, &denied):
		return fmt.Errorf("no permission to invalidate distribution %s: the publisher role needs cloudfront:CreateInvalidation on it: %w", distributionID, err)
	case errors.As(err, &missing):
		return fmt.Errorf("invalidate distribution %s: no such distribution (check the distribution ID): %w", distributionID, err)
	}
	return fmt.Errorf("invalidate distribution %s: %w", distributionID, err)
}

// callerReference returns a unique id for one invalidation request:
// CloudFront treats two requests with the same reference as one.
func callerReference() string {
	b := make([]byte, 8)
	_, _ = crand.Read(b)
	return "publish-" + time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}
