package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/image/imagetest"
	"github.com/ulikunitz/xz"
)

// Bad input of every kind: each run exits non-zero with one clear line on
// stderr naming the problem, and leaves images.json byte-for-byte as it was.
func TestBadInputChangesNothing(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry")
	goodMeta, goodRoot := sampleImage(t, "nginx", t0, 1)
	mustPublish(t, "nginx", "--bucket", reg, "--metadata", goodMeta, "--rootfs", goodRoot, "--alias", "web")
	imagesJSON := filepath.Join(reg, "streams/v1/images.json")
	before, err := os.ReadFile(imagesJSON)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	metaWith := func(name string, edit func(*imagetest.MetadataSpec)) string {
		spec := imagetest.DefaultSpec("x", t0.Add(time.Hour))
		edit(&spec)
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		return imagetest.WriteMetadata(t, d, spec)
	}
	xzOf := func(data []byte) []byte {
		var b bytes.Buffer
		w, _ := xz.NewWriter(&b)
		w.Write(data)
		w.Close()
		return b.Bytes()
	}
	good, _ := os.ReadFile(goodMeta)
	newMeta, newRoot := sampleImage(t, "caddy", t0.Add(time.Hour), 2)
	pub := func(name, meta, root string, extra ...string) []string {
		return append([]string{name, "--bucket", reg, "--metadata", meta, "--rootfs", root}, extra...)
	}
	regFile := file("not-a-dir", []byte("x"))

	tests := []struct {
		name string
		args []string
		want string // in the single stderr line
	}{
		{"metadata is not xz", pub("caddy", file("plain.tar.xz", []byte("PK\x03\x04 zip file")), newRoot), "not an xz"},
		{"metadata xz but not tar", pub("caddy", file("notar.tar.xz", xzOf(bytes.Repeat([]byte("hello "), 200))), newRoot), "tar"},
		{"metadata tarball truncated", pub("caddy", file("trunc.tar.xz", good[:len(good)/2]), newRoot), "trunc.tar.xz"},
		{"no metadata.yaml", pub("caddy", metaWith("nometa", func(s *imagetest.MetadataSpec) { s.NoMetadataYAML = true }), newRoot), "metadata.yaml"},
		{"metadata.yaml not YAML", pub("caddy", metaWith("badyaml", func(s *imagetest.MetadataSpec) { s.RawYAML = "architecture: [x86_64\n" }), newRoot), "metadata.yaml"},
		{"missing architecture", pub("caddy", metaWith("noarch", func(s *imagetest.MetadataSpec) { s.Omit = []string{"architecture"} }), newRoot), `"architecture"`},
		{"missing creation_date", pub("caddy", metaWith("nodate", func(s *imagetest.MetadataSpec) { s.Omit = []string{"creation_date"} }), newRoot), `"creation_date"`},
		{"missing properties.os", pub("caddy", metaWith("noos", func(s *imagetest.MetadataSpec) { s.Omit = []string{"properties.os"} }), newRoot), `"properties.os"`},
		{"missing properties.release", pub("caddy", metaWith("norel", func(s *imagetest.MetadataSpec) { s.Omit = []string{"properties.release"} }), newRoot), `"properties.release"`},
		{"unknown architecture", pub("caddy", metaWith("sparc", func(s *imagetest.MetadataSpec) { s.Architecture, s.ArchProperty = "sparc64", "" }), newRoot), `unknown architecture "sparc64"`},
		{"architecture mismatch with --arch", pub("caddy", newMeta, newRoot, "--arch", "arm64"), "architecture mismatch"},
		{"root is not an image", pub("caddy", newMeta, file("rootfs.img", bytes.Repeat([]byte{7}, 4096))), "not a squashfs, qcow2 or tar.xz"},
		{"root squashfs truncated", pub("caddy", newMeta, file("short.squashfs", func() []byte { b, _ := os.ReadFile(newRoot); return b[:len(b)/2] }())), "truncated"},
		{"root missing", pub("caddy", newMeta, filepath.Join(dir, "nope.squashfs")), "nope.squashfs"},
		{"metadata missing", pub("caddy", filepath.Join(dir, "nope.tar.xz"), newRoot), "nope.tar.xz"},
		{"alias owned by another product", pub("caddy", newMeta, newRoot, "--alias", "web"), `alias "web" is already owned by product "nginx:amd64"`},
		{"name owned as an alias", pub("web", newMeta, newRoot), `alias "web" is already owned by product "nginx:amd64"`},
		{"alias with a comma", pub("caddy", newMeta, newRoot, "--alias", "a,b"), `alias "a,b" contains ','`},
		{"bad appliance name", pub("Caddy", newMeta, newRoot), "must start with a lowercase letter"},
		{"same version, other content", pub("nginx", metaWith("samever", func(s *imagetest.MetadataSpec) { s.CreationDate = t0.Unix() }), newRoot), "already published with different content"},
		{"missing --rootfs", []string{"caddy", "--bucket", reg, "--metadata", newMeta}, "--metadata FILE and --rootfs FILE go together"},
		{"unknown appliance, nothing built", []string{"nope", "--bucket", reg}, `no appliance "nope"`},
		{"http bucket URL", []string{"caddy", "--bucket", "http://example.com/reg", "--metadata", newMeta, "--rootfs", newRoot}, `unsupported scheme "http"`},
		{"relative file URL", []string{"caddy", "--bucket", "file://registry", "--metadata", newMeta, "--rootfs", newRoot}, "three slashes"},
		{"bad S3 bucket name", []string{"caddy", "--bucket", "s3://Bad_Bucket", "--metadata", newMeta, "--rootfs", newRoot}, "bucket name"},
		{"bucket parent missing", []string{"caddy", "--bucket", filepath.Join(dir, "missing/registry"), "--metadata", newMeta, "--rootfs", newRoot}, "does not exist"},
		{"bucket is a file", []string{"caddy", "--bucket", regFile, "--metadata", newMeta, "--rootfs", newRoot}, "not a directory"},
		{"remove unknown alias", []string{"remove", "--bucket", reg, "nope"}, `no image or alias "nope"`},
		{"list a registry that is not there", []string{"list", "--bucket", filepath.Join(dir, "void")}, "does not exist"},
		{"prune with negative keep", []string{"prune", "--bucket", reg, "--keep=-1"}, "--keep must be 0 or more"},
		{"unknown flag", []string{"caddy", "--bucket", reg, "--colour"}, "unknown flag --colour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := publish(t, tt.args...)
			if r.code == 0 {
				t.Fatalf("exit 0, want non-zero\nstdout: %s", r.stdout)
			}
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "publish: error: ") || !strings.Contains(lines[0], tt.want) {
				t.Errorf("stderr = %q\nwant one \"publish: error: ...\" line containing %q", r.stderr, tt.want)
			}
			after, err := os.ReadFile(imagesJSON)
			if err != nil || !bytes.Equal(before, after) {
				t.Errorf("images.json changed (err %v)", err)
			}
		})
	}
	if len(tests) < 15 {
		t.Fatalf("only %d bad inputs", len(tests))
	}
}
