package s3store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/incus-appliance/registry/internal/store"
)

// Limits and defaults of multipart uploads (S3's limits).
const (
	// MinPartSize is the smallest part S3 accepts (except the last one).
	MinPartSize = 5 << 20
	// DefaultPartSize is Options.PartSize when zero.
	DefaultPartSize = 16 << 20
	// DefaultConcurrency is Options.Concurrency when zero.
	DefaultConcurrency = 4
	// DefaultMultipartThreshold is Options.MultipartThreshold when zero.
	DefaultMultipartThreshold = 64 << 20
	// DefaultMaxAttempts is how often a request is tried when neither
	// AWS_MAX_ATTEMPTS nor the profile sets it.
	DefaultMaxAttempts = 8

	maxSinglePut = 5 << 30 // largest PutObject and largest part
	maxParts     = 10000
)

// Options configure a Store. Empty fields fall back to the AWS SDK's
// standard configuration chain or to the defaults above.
type Options struct {
	// Bucket holds the registry (required).
	Bucket string
	// Prefix puts the registry under a key prefix: key k is stored as
	// Prefix+"/"+k. "" is the bucket root. It must be a valid store key
	// (no leading or trailing slash). The prefix counts against S3's
	// 1024-byte key limit.
	Prefix string
	// Region; "" means the SDK chain (AWS_REGION, profile), then us-east-1.
	Region string
	// EndpointURL; "" means the SDK chain (AWS_ENDPOINT_URL,
	// AWS_ENDPOINT_URL_S3, config files). Any custom endpoint, given here
	// or by the chain, selects path-style addressing.
	EndpointURL string
	// Profile is the shared-config profile; "" means AWS_PROFILE or default.
	Profile string
	// PartSize of multipart uploads: default 16 MiB, at least 5 MiB.
	PartSize int64
	// Concurrency is the number of parts uploaded at once; default 4.
	Concurrency int
	// MultipartThreshold: bodies larger than this use a multipart upload;
	// default 64 MiB, at most 5 GiB.
	MultipartThreshold int64
}

// Store is a store.Store over one S3 bucket (and prefix). It is safe for
// concurrent use.
type Store struct {
	client    *s3.Client
	transport *http.Transport
	bucket    string
	root      string // "" or Prefix+"/"
	opts      Options
}

var _ store.Store = (*Store)(nil)

// New loads the AWS configuration and returns a Store for opts.Bucket. It
// does not contact the store.
func New(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.normalize(); err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	// The SDK's buildable client, unlike a plain *http.Client, lets
	// LoadDefaultConfig add AWS_CA_BUNDLE's certificates to it.
	hc := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = 10 * time.Second
			d.KeepAlive = 30 * time.Second
		}).
		WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConns = 100
			tr.MaxIdleConnsPerHost = max(opts.Concurrency+2, awshttp.DefaultHTTPTransportMaxIdleConnsPerHost)
			tr.IdleConnTimeout = 90 * time.Second
			tr.TLSHandshakeTimeout = 10 * time.Second
			tr.ExpectContinueTimeout = time.Second
			// Time from the end of the request body to the response
			// headers: generous, since completing a large multipart
			// upload can take a while on some stores.
			tr.ResponseHeaderTimeout = 5 * time.Minute
		})
	load := []func(*config.LoadOptions) error{config.WithHTTPClient(hc)}
	if opts.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(opts.Profile))
	}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3store: load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	// Take the finished transport (with any CA bundle applied) into a
	// client we own, so that Close can release its idle connections.
	b, ok := cfg.HTTPClient.(*awshttp.BuildableClient)
	if !ok {
		return nil, fmt.Errorf("s3store: unexpected HTTP client %T", cfg.HTTPClient)
	}
	tr := b.GetTransport()
	cfg.HTTPClient = &http.Client{Transport: tr, CheckRedirect: limitedRedirect}

	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.EndpointURL != "" {
			o.BaseEndpoint = aws.String(opts.EndpointURL)
		}
		if o.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
		// Ride out a store restart or a network blip: more attempts and
		// longer backoff than the SDK default (3 attempts), unless
		// AWS_MAX_ATTEMPTS or the profile says otherwise; no client-side
		// retry quota, so many parallel parts never fail for lack of
		// retry tokens.
		attempts := cfg.RetryMaxAttempts
		if attempts == 0 {
			attempts = DefaultMaxAttempts
		}
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = attempts
			so.MaxBackoff = 10 * time.Second
			so.RateLimiter = ratelimit.None
		})
		// No logging: multipart objects carry composite checksums the
		// SDK cannot validate on Get, and it would say so on stderr.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	s := &Store{client: client, transport: tr, bucket: opts.Bucket, opts: opts}
	if opts.Prefix != "" {
		s.root = opts.Prefix + "/"
	}
	return s, nil
}

func (o *Options) normalize() error {
	if o.Bucket == "" {
		return errors.New("no bucket given")
	}
	if err := CheckBucketName(o.Bucket); err != nil {
		return err
	}
	if o.Prefix != "" {
		if err := store.ValidateKey(o.Prefix); err != nil {
			return fmt.Errorf("prefix: %w", err)
		}
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < MinPartSize || o.PartSize > maxSinglePut {
		return fmt.Errorf("part size %d outside [%d, %d]", o.PartSize, MinPartSize, maxSinglePut)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MultipartThreshold <= 0 {
		o.MultipartThreshold = DefaultMultipartThreshold
	}
	if o.MultipartThreshold > maxSinglePut {
		return fmt.Errorf("multipart threshold %d above S3's %d-byte PUT limit", o.MultipartThreshold, maxSinglePut)
	}
	return nil
}

// limitedRedirect follows only 307 and 308 (which keep the method and
// body), like the SDK's own client; S3 answers other redirects with an
// error the SDK reports.
func limitedRedirect(r *http.Request, via []*http.Request) error {
	switch r.Response.StatusCode {
	case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if via[len(via)-1].URL.Host != r.URL.Host {
			r.Header.Del("X-Amz-Security-Token")
		}
		return nil
	}
	return http.ErrUseLastResponse
}

// Close releases idle connections. The Store must not be used afterwards
// (though doing so only opens new connections). Close is idempotent.
func (s *Store) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// objectKey validates a registry key and returns the S3 key it lives at.
func (s *Store) objectKey(key string) (string, error) {
	if err := store.ValidateKey(key); err != nil {
		return "", err
	}
	full := s.root + key
	if len(full) > store.MaxKeyLen {
		return "", fmt.Errorf("%w %q: longer than %d bytes under prefix %q",
			store.ErrInvalidKey, key, store.MaxKeyLen, s.opts.Prefix)
	}
	return full, nil
}

// CheckBucketName applies the S3 bucket naming rules.
func CheckBucketName(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters", b)
	}
	for i, c := range []byte(b) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (c == '-' || c == '.') && i > 0 && i < len(b)-1
		if !ok {
			return fmt.Errorf("bucket name %q: only lowercase letters, digits, '.' and '-' are allowed, starting and ending with a letter or digit", b)
		}
	}
	return nil
}
