package cdn_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/incus-appliance/registry/internal/cdn"
	"github.com/incus-appliance/registry/internal/cdn/cdntest"
)

// fakeCloudFront starts the fake API and points this process's AWS
// configuration at it, with static credentials and no shared files.
func fakeCloudFront(t *testing.T) *cdntest.Server {
	t.Helper()
	srv := cdntest.Start(t)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_CLOUDFRONT": srv.URL,
		"AWS_ACCESS_KEY_ID":           "AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY":       "secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  "",
		"AWS_DEFAULT_REGION":          "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
	return srv
}

func TestCatalogPaths(t *testing.T) {
	for prefix, want := range map[string][]string{
		"":               {"/streams/v1/index.json", "/streams/v1/images.json", "/streams/v1/images-*", "/streams/v1/index.sjson", "/streams/v1/images.sjson"},
		"incus":          {"/incus/streams/v1/index.json", "/incus/streams/v1/images.json", "/incus/streams/v1/images-*", "/incus/streams/v1/index.sjson", "/incus/streams/v1/images.sjson"},
		"/incus/stable/": {"/incus/stable/streams/v1/index.json", "/incus/stable/streams/v1/images.json", "/incus/stable/streams/v1/images-*", "/incus/stable/streams/v1/index.sjson", "/incus/stable/streams/v1/images.sjson"},
	} {
		if got := cdn.CatalogPaths(prefix); !slices.Equal(got, want) {
			t.Errorf("CatalogPaths(%q) = %q, want %q", prefix, got, want)
		}
	}
}

// One signed CreateInvalidation with both catalog paths (with the registry
// prefix) and a fresh caller reference each time; no region configured.
func TestInvalidate(t *testing.T) {
	srv := fakeCloudFront(t)
	ctx := context.Background()
	paths := cdn.CatalogPaths("incus")
	for range 2 {
		if err := cdn.Invalidate(ctx, srv.Distribution, paths); err != nil {
			t.Fatal(err)
		}
	}
	got := srv.Invalidations()
	if len(got) != 2 {
		t.Fatalf("%d invalidations, want 2", len(got))
	}
	want := []string{"/incus/streams/v1/index.json", "/incus/streams/v1/images.json", "/incus/streams/v1/images-*", "/incus/streams/v1/index.sjson", "/incus/streams/v1/images.sjson"}
	for _, inv := range got {
		if inv.DistributionID != srv.Distribution || !slices.Equal(inv.Paths, want) {
			t.Errorf("invalidation %+v, want distribution %s paths %q", inv, srv.Distribution, want)
		}
	}
	if got[0].CallerReference == got[1].CallerReference {
		t.Errorf("caller reference %q reused: CloudFront would treat the second request as the first", got[0].CallerReference)
	}
}

// AccessDenied says which permission the role lacks, keeps the API error,
// and records nothing.
func TestInvalidateAccessDenied(t *testing.T) {
	srv := fakeCloudFront(t)
	srv.SetDeny(true)
	err := cdn.Invalidate(context.Background(), srv.Distribution, cdn.CatalogPaths(""))
	if err == nil {
		t.Fatal("no error")
	}
	want := "no permission to invalidate distribution " + srv.Distribution + ": the publisher role needs cloudfront:CreateInvalidation on it"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q\ndoes not start with %q", err, want)
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		t.Errorf("error %v does not carry the AccessDenied API error", err)
	}
	if n := len(srv.Invalidations()); n != 0 {
		t.Errorf("%d invalidations recorded", n)
	}
}

func TestInvalidateNoSuchDistribution(t *testing.T) {
	fakeCloudFront(t)
	err := cdn.Invalidate(context.Background(), "EWRONG", cdn.CatalogPaths(""))
	if err == nil || !strings.Contains(err.Error(), "invalidate distribution EWRONG: no such distribution") {
		t.Fatalf("error %v, want a no such distribution error", err)
	}
}
