package main

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/cdn/cdntest"
	"github.com/incus-appliance/registry/internal/miniotest"
)

// cdnFixture is a MinIO bucket and a fake CloudFront, both reached through
// this process's environment, as run() would be in production.
type cdnFixture struct {
	cf     *cdntest.Server
	bucket string // --bucket, with a registry prefix
}

func newCDNFixture(t *testing.T) *cdnFixture {
	t.Helper()
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"cdn"}})
	cf := cdntest.Start(t)
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	srv.SetEnv(t)
	t.Setenv("AWS_ENDPOINT_URL_CLOUDFRONT", cf.URL)
	t.Setenv("PUBLISH_CLOUDFRONT_DISTRIBUTION", cf.Distribution)
	return &cdnFixture{cf: cf, bucket: "s3://cdn/incus"}
}

// run runs one command line and returns its exit code and output.
func (f *cdnFixture) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append(args, "--bucket", f.bucket), &out, &errb)
	return code, out.String(), errb.String()
}

// The catalog paths, with the registry prefix, are invalidated after every
// command that changed what clients see, and only then.
func TestCloudFrontInvalidatedAfterCatalogChanges(t *testing.T) {
	f := newCDNFixture(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	want := []string{"/incus/streams/v1/index.json", "/incus/streams/v1/images.json", "/incus/streams/v1/images-*", "/incus/streams/v1/index.sjson", "/incus/streams/v1/images.sjson"}
	steps := []struct {
		args       []string
		invalidate bool
	}{
		{sampleArgs(t, "hello", t0), true},
		{sampleArgs(t, "hello", t0), false}, // already published
		{append(sampleArgs(t, "hello", t0.Add(time.Hour)), "--dry-run"), false},
		{sampleArgs(t, "hello", t0.Add(time.Hour)), true},
		{[]string{"remove", "hello", "--dry-run"}, false},
		{[]string{"remove", "hello"}, true},
		{[]string{"prune", "--keep", "5", "--grace", "2h"}, false}, // nothing to drop
		{sampleArgs(t, "hello", t0.Add(2*time.Hour)), true},
		{[]string{"prune", "--keep", "1", "--grace", "2h", "--dry-run"}, false},
		{[]string{"prune", "--keep", "1", "--grace", "2h"}, true},
	}
	for i, s := range steps {
		before := len(f.cf.Invalidations())
		if code, out, errs := f.run(t, s.args...); code != 0 {
			t.Fatalf("step %d %q: exit %d\n%s%s", i, s.args, code, out, errs)
		}
		got := f.cf.Invalidations()[before:]
		switch {
		case s.invalidate && (len(got) != 1 || !slices.Equal(got[0].Paths, want)):
			t.Errorf("step %d %q: invalidations %+v, want one of %q", i, s.args, got, want)
		case !s.invalidate && len(got) != 0:
			t.Errorf("step %d %q: invalidated %+v, want nothing (no visible change)", i, s.args, got)
		}
	}
}

// A refused invalidation after a successful publish: exit 1, the result on
// stdout, one stderr line saying the publish is committed and what
// permission is missing.
func TestCloudFrontDeniedAfterCommit(t *testing.T) {
	f := newCDNFixture(t)
	f.cf.SetDeny(true)
	code, out, errs := f.run(t, sampleArgs(t, "hello", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))...)
	if code != exitError {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitError, out, errs)
	}
	if !strings.HasPrefix(out, "published hello:amd64") {
		t.Errorf("stdout %q does not report the publish", out)
	}
	if strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "publish hello: committed, but the CDN still serves the old catalog") ||
		!strings.Contains(errs, "no permission to invalidate distribution "+f.cf.Distribution+": the publisher role needs cloudfront:CreateInvalidation on it") {
		t.Errorf("stderr %q: want one line saying the publish is committed and the invalidation was refused", errs)
	}
	if code, out, errs := f.run(t, "list"); code != 0 || !strings.Contains(out, "hello") {
		t.Errorf("list after a refused invalidation: exit %d\n%s%s", code, out, errs)
	}
}

// The flag is checked before anything is written.
func TestCloudFrontFlagChecked(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"remove", "hello", "--bucket", dir, "--cloudfront-distribution", "E2EXAMPLE"},
		{"prune", "--bucket", "s3://cdn", "--cloudfront-distribution", "d111111abcdef8.cloudfront.net"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, errb.String())
		}
	}
}
