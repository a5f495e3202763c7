package location

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	abs, _ := filepath.Abs("registry")
	tests := []struct {
		in      string
		want    Location
		wantErr string
	}{
		{"registry", Location{Kind: Dir, Path: abs}, ""},
		{"./registry", Location{Kind: Dir, Path: abs}, ""},
		{"/srv/reg/", Location{Kind: Dir, Path: "/srv/reg"}, ""},
		{"file:///srv/reg", Location{Kind: Dir, Path: "/srv/reg"}, ""},
		{"file://localhost/srv/reg", Location{Kind: Dir, Path: "/srv/reg"}, ""},
		{"s3://my-bucket", Location{Kind: S3, Bucket: "my-bucket"}, ""},
		{"s3://my-bucket/", Location{Kind: S3, Bucket: "my-bucket"}, ""},
		{"s3://my-bucket/team/images/", Location{Kind: S3, Bucket: "my-bucket", Prefix: "team/images"}, ""},
		{"", Location{}, "empty bucket location"},
		{"file://reg", Location{}, "three slashes"},
		{"file:", Location{}, "unsupported form"},
		{"http://x/y", Location{}, `unsupported scheme "http"`},
		{"gs://bucket", Location{}, `unsupported scheme "gs"`},
		{"s3://", Location{}, "must be 3 to 63"},
		{"s3://Upper", Location{}, "only lowercase"},
		{"s3://bu-/x", Location{}, "only lowercase"},
		{"s3://bucket/../x", Location{}, "prefix"},
		{"host:path", Location{}, "unsupported form"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestString(t *testing.T) {
	for _, s := range []string{"s3://b-1/p/q", "s3://bucket", "/srv/reg"} {
		l, err := Parse(s)
		if err != nil || l.String() != s {
			t.Errorf("Parse(%q).String() = %q, %v", s, l.String(), err)
		}
	}
}
