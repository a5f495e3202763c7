package s3store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/miniotest"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/s3store"
	"github.com/incus-appliance/registry/internal/store/storetest"
	"github.com/incus-appliance/registry/internal/tlsutil"
)

// roundTrip stores a small object and a multipart one and reads them back.
func roundTrip(t *testing.T, st store.Store) {
	t.Helper()
	small := []byte(`{"hello":"world"}`)
	mustPut(t, st, "streams/v1/index.json", bytes.NewReader(small), int64(len(small)),
		store.PutOptions{SHA256: digest.Of(small), IfAbsent: true})
	if info := storetest.WantObject(t, st, "streams/v1/index.json", small); info.SHA256 != digest.Of(small) {
		t.Errorf("Stat SHA256 = %q", info.SHA256)
	}
	big := pseudoRandom(9, 11*mib)
	mustPut(t, st, "images/rootfs", onlyReader{bytes.NewReader(big)}, int64(len(big)), store.PutOptions{SHA256: digest.Of(big)})
	storetest.WantObject(t, st, "images/rootfs", big)
	list, err := st.List(t.Context(), "")
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %v, %v; want 2 objects", list, err)
	}
}

// TLS with AWS_CA_BUNDLE naming the server's certificate: the SDK must
// trust it although Store tunes its own transport.
func TestTLSWithCABundle(t *testing.T) {
	srv := start(t, true)
	setenv(t, "AWS_CA_BUNDLE", srv.CertFile)
	st := newStore(t, srv, s3store.Options{PartSize: 5 * mib, MultipartThreshold: 5 * mib})
	roundTrip(t, st)

	// Over HTTPS too the store refuses a body that changed after hashing.
	wantCorruptUploadRefused(t, st, "corrupt")
}

// Plain HTTP while AWS_CA_BUNDLE names an unrelated certificate, with the
// endpoint and region from the environment only (no region at all: the
// us-east-1 fallback), which must select path-style addressing.
func TestEnvEndpointWithUnrelatedCABundle(t *testing.T) {
	srv := start(t, false)
	cert, _, err := tlsutil.SelfSigned([]string{"unrelated.example"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(bundle, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	setenv(t, "AWS_CA_BUNDLE", bundle)
	setenv(t, "AWS_ENDPOINT_URL", srv.Endpoint)
	st, err := s3store.New(t.Context(), s3store.Options{Bucket: bucket, PartSize: 5 * mib, MultipartThreshold: 5 * mib})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	roundTrip(t, st)
}

// A named profile from the shared config files supplies region, endpoint
// and credentials.
func TestProfile(t *testing.T) {
	srv := start(t, false)
	dir := t.TempDir()
	conf := "[profile mini]\nregion = " + miniotest.Region + "\nendpoint_url = " + srv.Endpoint + "\n"
	creds := "[mini]\naws_access_key_id = " + srv.AccessKey + "\naws_secret_access_key = " + srv.SecretKey + "\n"
	for name, text := range map[string]string{"config": conf, "credentials": creds} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setenv(t, "AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	setenv(t, "AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	setenv(t, "AWS_ACCESS_KEY_ID", "")
	setenv(t, "AWS_SECRET_ACCESS_KEY", "")
	st, err := s3store.New(t.Context(), s3store.Options{Bucket: bucket, Profile: "mini"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	data := []byte("via profile")
	mustPut(t, st, "p", bytes.NewReader(data), int64(len(data)), store.PutOptions{})
	storetest.WantObject(t, st, "p", data)
}

func TestPrefix(t *testing.T) {
	srv := start(t, false)
	st := newStore(t, srv, s3store.Options{Prefix: "pfx"})
	raw := srv.Client()
	ctx := t.Context()
	data := []byte("under a prefix")
	mustPut(t, st, "a/b", bytes.NewReader(data), int64(len(data)), store.PutOptions{SHA256: digest.Of(data)})
	if _, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("pfx/a/b")}); err != nil {
		t.Errorf("the object is not at pfx/a/b: %v", err)
	}
	// Objects outside the prefix, or not named like registry keys, are
	// not the registry's.
	for _, k := range []string{"a/outside", "pfxother/x", "pfx/.hidden", "pfx/with space"} {
		if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k),
			Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefix := range []string{"", "a", "a/"} {
		list, err := st.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, info := range list {
			keys = append(keys, info.Key)
		}
		if !slices.Equal(keys, []string{"a/b"}) {
			t.Errorf("List(%q) = %q, want [a/b]", prefix, keys)
		}
	}
	storetest.WantObject(t, st, "a/b", data)
	wantAbsent(t, st, "outside")

	// The prefix counts against S3's key limit.
	longest := longKey(store.MaxKeyLen - len("pfx/"))
	if _, err := st.Put(ctx, longest+"x", bytes.NewReader(nil), 0, store.PutOptions{}); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("Put of a key too long under the prefix: error = %v, want ErrInvalidKey", err)
	}
	mustPut(t, st, longest, bytes.NewReader(nil), 0, store.PutOptions{})

	if err := st.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/outside")}); err != nil {
		t.Errorf("Delete touched an object outside the prefix: %v", err)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	for _, opts := range []s3store.Options{
		{},
		{Bucket: bucket, Prefix: "/abs"},
		{Bucket: bucket, Prefix: "trailing/"},
		{Bucket: bucket, PartSize: 1 << 20},
		{Bucket: bucket, MultipartThreshold: 6 << 30},
	} {
		if st, err := s3store.New(t.Context(), opts); err == nil {
			st.Close()
			t.Errorf("New(%+v) succeeded", opts)
		}
	}
}

// A missing bucket is an error, not an empty registry.
func TestMissingBucket(t *testing.T) {
	srv := start(t, false)
	st := newStore(t, srv, s3store.Options{Bucket: "no-such-bucket"})
	if _, _, err := st.Get(t.Context(), "k"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get in a missing bucket: error = %v, want one that is not ErrNotFound", err)
	}
	if _, err := st.List(t.Context(), ""); err == nil {
		t.Errorf("List of a missing bucket succeeded")
	}
}

// longKey returns a key of n bytes made of 100-byte segments (MinIO, like
// file systems, limits a segment to 255 bytes).
func longKey(n int) string {
	key := strings.Repeat("k", (n-1)%101+1)
	for len(key) < n {
		key += "/" + strings.Repeat("k", 100)
	}
	return key
}
