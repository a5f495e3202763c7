// Package location parses the --bucket argument of the CLIs and opens the
// store it names: a directory path, file:///abs/path, or (with the S3
// backend) s3://BUCKET[/PREFIX].
package location

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/dirstore"
	"github.com/incus-appliance/registry/internal/store/s3store"
)

// Default is the registry location used when --bucket is not given.
const Default = "./registry"

// Kind says which backend a location needs.
type Kind string

// Location kinds.
const (
	Dir Kind = "dir"
	S3  Kind = "s3"
)

// Location is a parsed --bucket value.
type Location struct {
	Kind Kind
	// Path is the directory of a Dir location (absolute).
	Path string
	// Bucket and Prefix of an S3 location; Prefix has no leading or
	// trailing slash.
	Bucket, Prefix string
}

// String returns the canonical form of the location.
func (l Location) String() string {
	switch l.Kind {
	case S3:
		if l.Prefix == "" {
			return "s3://" + l.Bucket
		}
		return "s3://" + l.Bucket + "/" + l.Prefix
	default:
		return l.Path
	}
}

// UnmarshalText parses a location (see Parse), so that a command line
// parser turns --bucket into a Location once.
func (l *Location) UnmarshalText(text []byte) error {
	p, err := Parse(string(text))
	if err != nil {
		return err
	}
	*l = p
	return nil
}

// Parse parses a location: a directory path (relative or absolute),
// file:///abs/path, or s3://BUCKET[/PREFIX]. The error says what forms are
// accepted.
func Parse(s string) (Location, error) {
	const forms = "use a directory path, file:///absolute/path or s3://bucket[/prefix]"
	if s == "" {
		return Location{}, fmt.Errorf("empty bucket location: %s", forms)
	}
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		if i := strings.IndexByte(s, ':'); i >= 0 && !strings.Contains(s[:i], "/") {
			return Location{}, fmt.Errorf("bucket location %q: unsupported form %q (write ./%s for a directory): %s", s, s[:i+1], s, forms)
		}
		abs, err := filepath.Abs(s)
		if err != nil {
			return Location{}, fmt.Errorf("bucket location %q: %w", s, err)
		}
		return Location{Kind: Dir, Path: abs}, nil
	}
	switch strings.ToLower(scheme) {
	case "file":
		u, err := url.Parse(s)
		if err != nil {
			return Location{}, fmt.Errorf("bucket location %q: %v: %s", s, err, forms)
		}
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("bucket location %q: file URLs must be absolute, with three slashes (file:///path)", s)
		}
		if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
			return Location{}, fmt.Errorf("bucket location %q: file URL has no absolute path (file:///path)", s)
		}
		return Location{Kind: Dir, Path: filepath.Clean(u.Path)}, nil
	case "s3":
		bucket, prefix, _ := strings.Cut(rest, "/")
		if err := s3store.CheckBucketName(bucket); err != nil {
			return Location{}, fmt.Errorf("bucket location %q: %v", s, err)
		}
		prefix = strings.Trim(prefix, "/")
		if prefix != "" {
			if err := store.ValidatePrefix(prefix); err != nil {
				return Location{}, fmt.Errorf("bucket location %q: prefix: %v", s, err)
			}
		}
		return Location{Kind: S3, Bucket: bucket, Prefix: prefix}, nil
	}
	return Location{}, fmt.Errorf("bucket location %q: unsupported scheme %q: %s", s, scheme, forms)
}

// Options tune Open.
type Options struct {
	// Create makes a missing registry directory (its parent must exist).
	// Commands that only read leave it false, so a typo is an error.
	Create bool
	// AWS configures an S3 location.
	AWS
	// S3Concurrency, when > 0, bounds the parts an S3 upload sends at once
	// (and so its (S3Concurrency+1)×part-size buffers); 0: the store's
	// default.
	S3Concurrency int
	// S3PartSize, when > 0, is the part size of S3 multipart uploads
	// (at least 5 MiB; grown for objects that would need more than 10,000
	// parts); 0: the store's default.
	S3PartSize int64
}

// AWS are the AWS-standard settings of an S3 location, as every command
// line takes them (the aws CLI's flag names); empty values fall back to the
// AWS SDK's standard chain (AWS_ENDPOINT_URL, AWS_REGION, AWS_PROFILE,
// shared config files). The tags are kong's.
type AWS struct {
	EndpointURL string `name:"endpoint-url" placeholder:"URL" help:"S3 endpoint (MinIO, R2, ...); default: AWS_ENDPOINT_URL or AWS."`
	Region      string `placeholder:"REGION" help:"S3 region; default: AWS_REGION or the profile's."`
	Profile     string `placeholder:"NAME" help:"AWS shared-config profile; default: AWS_PROFILE."`
}

// Open opens the store at loc.
func Open(ctx context.Context, loc Location, opts Options) (store.Store, error) {
	switch loc.Kind {
	case Dir:
		return dirstore.Open(loc.Path, dirstore.Options{Create: opts.Create})
	case S3:
		return s3store.New(ctx, s3store.Options{
			Bucket: loc.Bucket, Prefix: loc.Prefix,
			EndpointURL: opts.EndpointURL, Region: opts.Region, Profile: opts.Profile,
			Concurrency: opts.S3Concurrency, PartSize: opts.S3PartSize,
		})
	}
	return nil, fmt.Errorf("unknown location kind %q", loc.Kind)
}
