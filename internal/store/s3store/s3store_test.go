package s3store_test

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/incus-appliance/registry/internal/miniotest"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/s3store"
	"github.com/incus-appliance/registry/internal/store/storetest"
)

const (
	bucket = "registry"
	mib    = 1 << 20
)

var prefixSeq atomic.Int64

// TestConformance runs the store suite twice against one MinIO: with the
// default sizes (every suite object is a single PutObject) and with small
// ones (the suite's 8 MiB object goes multipart). Every store gets its own
// prefix, except MaxLenKey's: a prefix eats into S3's 1024-byte key limit,
// and the suite's own per-subtest base keeps that one apart.
func TestConformance(t *testing.T) {
	srv := start(t, false)
	for _, c := range []struct {
		name string
		opts s3store.Options
	}{
		{"Single", s3store.Options{}},
		{"Multipart", s3store.Options{PartSize: 5 * mib, MultipartThreshold: 6 * mib, Concurrency: 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				opts := c.opts
				if !strings.HasSuffix(t.Name(), "/MaxLenKey") {
					opts.Prefix = fmt.Sprintf("conf%d", prefixSeq.Add(1))
				}
				return newStore(t, srv, opts)
			}, storetest.Capabilities{Attributes: true})
		})
	}
}

// start starts MinIO with the bucket and points the SDK's environment at
// it (credentials; no profile, no shared config files, no endpoint).
func start(t testing.TB, tls bool) *miniotest.Server {
	t.Helper()
	srv := miniotest.Start(t, miniotest.Options{TLS: tls, Buckets: []string{bucket}})
	isolateEnv(t, srv)
	return srv
}

func isolateEnv(t testing.TB, srv *miniotest.Server) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           srv.AccessKey,
		"AWS_SECRET_ACCESS_KEY":       srv.SecretKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_REGION":                  "",
		"AWS_DEFAULT_REGION":          "",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_S3":         "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		setenv(t, k, v)
	}
}

// setenv is t.Setenv for tests and benchmarks.
func setenv(t testing.TB, k, v string) {
	t.Helper()
	t.Setenv(k, v)
}

// newStore opens a store on srv's bucket (endpoint from srv unless given).
func newStore(t testing.TB, srv *miniotest.Server, opts s3store.Options) *s3store.Store {
	t.Helper()
	if opts.Bucket == "" {
		opts.Bucket = bucket
	}
	if opts.EndpointURL == "" {
		opts.EndpointURL = srv.Endpoint
	}
	st, err := s3store.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// pseudoRandom returns n incompressible deterministic bytes.
func pseudoRandom(seed byte, n int) []byte {
	b := make([]byte, n)
	fill(b, int64(seed)<<40)
	return b
}

// fill writes the generator's bytes for offsets off.. into p.
func fill(p []byte, off int64) {
	for i := range p {
		x := uint64(off+int64(i)) * 0x9E3779B97F4A7C15
		p[i] = byte(x>>56 ^ x>>29)
	}
}

// onlyReader hides everything but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func mustPut(t *testing.T, st store.Store, key string, body io.Reader, size int64, opts store.PutOptions) store.ObjectInfo {
	t.Helper()
	info, err := st.Put(t.Context(), key, body, size, opts)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func wantAbsent(t *testing.T, st store.Store, key string) {
	t.Helper()
	if _, err := st.Stat(t.Context(), key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat(%q) error = %v, want ErrNotFound", key, err)
	}
}

// noUploads checks that no multipart upload lingers in the bucket.
func noUploads(t *testing.T, srv *miniotest.Server) {
	t.Helper()
	out, err := srv.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	for _, u := range out.Uploads {
		t.Errorf("leftover multipart upload %s of %s", aws.ToString(u.UploadId), aws.ToString(u.Key))
	}
}
