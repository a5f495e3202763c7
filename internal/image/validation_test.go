package image_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
)

// omit returns the default spec without the named fields.
func omit(fields ...string) imagetest.MetadataSpec {
	s := spec()
	s.Omit = fields
	return s
}

// withSpec returns the default spec changed by f.
func withSpec(f func(*imagetest.MetadataSpec)) imagetest.MetadataSpec {
	s := spec()
	f(&s)
	return s
}

// raw returns a spec whose metadata.yaml is y.
func raw(y string) imagetest.MetadataSpec { return imagetest.MetadataSpec{RawYAML: y} }

const okYAML = `architecture: x86_64
creation_date: 1764092100
properties:
  os: debian
  release: bookworm
  variant: default
  description: Debian
`

func TestInspectMetadataErrors(t *testing.T) {
	valid := func(t testing.TB, dir string) []byte {
		return filetest.Read(t, imagetest.WriteMetadata(t, t.TempDir(), spec()))
	}
	bigTar := func(t testing.TB) []byte {
		return tarBytes(t, "metadata.yaml", okYAML, "templates/big.tpl", strings.Repeat("x", 100<<10))
	}
	for _, tc := range []struct {
		name string
		spec *imagetest.MetadataSpec               // metadata from a spec, or
		file func(t testing.TB, dir string) []byte // raw metadata file bytes
		want []string
	}{
		{name: "empty file", file: func(testing.TB, string) []byte { return []byte{} },
			want: []string{"file is empty", "distrobuilder"}},
		{name: "zip", file: func(testing.TB, string) []byte { return []byte("PK\x03\x04\x14\x00\x00\x00rest") },
			want: []string{`not an xz-compressed tarball (starts with "PK\x03\x04"`, "zip", `"tar -cJf"`}},
		{name: "gzip", file: func(testing.TB, string) []byte { return []byte{0x1f, 0x8b, 8, 0, 0, 0} },
			want: []string{"not an xz-compressed tarball", "gzip"}},
		{name: "plain tar", file: func(t testing.TB, _ string) []byte { return tarBytes(t, "metadata.yaml", okYAML) },
			want: []string{"not an xz-compressed tarball", "uncompressed tar"}},
		{name: "squashfs swapped", file: func(t testing.TB, dir string) []byte {
			return filetest.Read(t, imagetest.WriteSquashfs(t, t.TempDir(), 4096, 1))
		}, want: []string{"not an xz-compressed tarball", "swap"}},
		{name: "xz not tar", file: func(t testing.TB, _ string) []byte { return xzBytes(t, bytes.Repeat([]byte("not a tar\n"), 100)) },
			want: []string{"xz-compressed but not a tar archive"}},
		{name: "xz of nothing", file: func(t testing.TB, _ string) []byte { return xzBytes(t, nil) },
			want: []string{"tarball is empty", "metadata.yaml"}},
		{name: "truncated xz", file: func(t testing.TB, dir string) []byte { b := valid(t, dir); return b[:len(b)-30] },
			want: []string{"truncated", "re-create"}},
		{name: "truncated xz header", file: func(t testing.TB, dir string) []byte { return valid(t, dir)[:8] },
			want: []string{"truncated"}},
		{name: "corrupt xz", file: func(t testing.TB, dir string) []byte {
			b := valid(t, dir)
			b[len(b)/2] ^= 0x55
			return b
		}, want: []string{"corrupt xz data"}},
		{name: "trailing garbage", file: func(t testing.TB, dir string) []byte { return append(valid(t, dir), "this is not xz data"...) },
			want: []string{"corrupt xz data"}},
		{name: "truncated tar", file: func(t testing.TB, _ string) []byte { b := bigTar(t); return xzBytes(t, b[:len(b)/2]) },
			want: []string{"truncated tar archive", "templates/big.tpl"}},
		{name: "no metadata.yaml", spec: &imagetest.MetadataSpec{NoMetadataYAML: true},
			want: []string{"no metadata.yaml in the tarball", "templates/hostname.tpl"}},
		{name: "nested metadata.yaml", file: func(t testing.TB, _ string) []byte {
			return xzBytes(t, tarBytes(t, "image/metadata.yaml", okYAML))
		}, want: []string{"no metadata.yaml at the top", `"image/metadata.yaml"`, "-C DIR"}},
		{name: "two metadata.yaml", file: func(t testing.TB, _ string) []byte {
			return xzBytes(t, tarBytes(t, "metadata.yaml", okYAML, "./metadata.yaml", okYAML))
		}, want: []string{"metadata.yaml twice"}},
		{name: "bad yaml", spec: ptr(raw("architecture: [x86_64\n")), want: []string{"metadata.yaml: not valid YAML", "fix the syntax"}},
		{name: "tab yaml", spec: ptr(raw("architecture: x86_64\n\tcreation_date: 1\n")), want: []string{"metadata.yaml: not valid YAML"}},
		{name: "top-level list", spec: ptr(raw("- a\n- b\n")), want: []string{"metadata.yaml: must be a mapping", "a list"}},
		{name: "empty yaml", spec: ptr(raw("\n")), want: []string{`missing required fields "architecture", "creation_date", "properties.os"`}},
		{name: "architecture list", spec: ptr(raw(strings.Replace(okYAML, "x86_64", "[x86_64]", 1))),
			want: []string{`"architecture" must be a string, not a list`}},
		{name: "creation_date string", spec: ptr(raw(strings.Replace(okYAML, "1764092100", `"1764092100"`, 1))),
			want: []string{`"creation_date" must be a positive integer Unix time`}},
		{name: "creation_date date", spec: ptr(raw(strings.Replace(okYAML, "1764092100", "2026-11-25", 1))),
			want: []string{`"creation_date" must be a positive integer`, `"2026-11-25"`}},
		{name: "creation_date float", spec: ptr(raw(strings.Replace(okYAML, "1764092100", "17.5", 1))),
			want: []string{`"creation_date" must be a positive integer`}},
		{name: "creation_date negative", spec: ptr(raw(strings.Replace(okYAML, "1764092100", "-5", 1))),
			want: []string{`"creation_date" must be a positive integer`}},
		{name: "creation_date zero", spec: ptr(raw(strings.Replace(okYAML, "1764092100", "0", 1))),
			want: []string{`"creation_date" must be a positive integer`}},
		{name: "expiry_date string", spec: ptr(raw(okYAML + "expiry_date: soon\n")),
			want: []string{`"expiry_date" must be a positive integer`}},
		{name: "properties list", spec: ptr(raw("architecture: x86_64\ncreation_date: 5\nproperties: [a]\n")),
			want: []string{`"properties" must be a mapping of names to strings, not a list`}},
		{name: "property map", spec: ptr(raw(okYAML + "  name: {a: b}\n")),
			want: []string{`"properties.name" must be a string, not a mapping`}},
		{name: "duplicate key", spec: ptr(raw(okYAML + "architecture: arm64\n")),
			want: []string{`field "architecture" appears twice`}},
		{name: "missing architecture", spec: ptr(omit("architecture")), want: []string{`missing required field "architecture"`, "incus-simplestreams"}},
		{name: "missing creation_date", spec: ptr(omit("creation_date")), want: []string{`missing required field "creation_date"`}},
		{name: "missing os", spec: ptr(omit("properties.os")), want: []string{`metadata.yaml: missing required field "properties.os"`}},
		{name: "missing release", spec: ptr(omit("properties.release")), want: []string{`missing required field "properties.release"`}},
		{name: "missing variant", spec: ptr(omit("properties.variant")), want: []string{`missing required field "properties.variant"`}},
		{name: "missing description", spec: ptr(omit("properties.description")), want: []string{`missing required field "properties.description"`}},
		{name: "missing properties", spec: ptr(omit("properties")),
			want: []string{`missing required fields "properties.os", "properties.release", "properties.variant", "properties.description"`}},
		{name: "blank os", spec: ptr(withSpec(func(s *imagetest.MetadataSpec) { s.OS = " " })), want: []string{`missing required field "properties.os"`}},
		{name: "unknown architecture", spec: ptr(withSpec(func(s *imagetest.MetadataSpec) { s.Architecture = "sparc" })),
			want: []string{`metadata.yaml: architecture: unknown architecture "sparc"`, "Incus knows"}},
		{name: "properties.architecture disagrees", spec: ptr(withSpec(func(s *imagetest.MetadataSpec) { s.ArchProperty = "arm64" })),
			want: []string{`architecture "x86_64" (amd64) and properties.architecture "arm64" (arm64) disagree`}},
		{name: "properties.architecture unknown", spec: ptr(withSpec(func(s *imagetest.MetadataSpec) { s.ArchProperty = "sparc" })),
			want: []string{`properties.architecture: unknown architecture "sparc"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var meta string
			if tc.spec != nil {
				meta = imagetest.WriteMetadata(t, dir, *tc.spec)
			} else {
				meta = writeFile(t, dir, "incus.tar.xz", tc.file(t, dir))
			}
			root := imagetest.WriteSquashfs(t, dir, 4096, 1)
			checkErr(t, meta, root, "metadata "+meta+": ", tc.want)
		})
	}
}

func TestInspectRootErrors(t *testing.T) {
	squashfs := func(t testing.TB, size int, used uint64) []byte {
		b := filetest.Read(t, imagetest.WriteSquashfs(t, t.TempDir(), size, 1))
		for i := range 8 {
			b[40+i] = byte(used >> (8 * i))
		}
		return b
	}
	for _, tc := range []struct {
		name string
		root func(t testing.TB) []byte
		want []string
	}{
		{"empty", func(testing.TB) []byte { return nil }, []string{"file is empty", "squashfs"}},
		{"text", func(testing.TB) []byte { return []byte("hello") },
			[]string{`not a squashfs, qcow2 or tar.xz image (starts with "hell")`, "rootfs.squashfs", "disk.qcow2", "rootfs.tar.xz"}},
		{"gzip", func(testing.TB) []byte { return []byte{0x1f, 0x8b, 8, 0, 1, 2, 3} }, []string{"not a squashfs, qcow2 or tar.xz image", "gzip"}},
		{"truncated squashfs", func(t testing.TB) []byte { return squashfs(t, 8192, 8193) },
			[]string{"truncated squashfs: its superblock says 8193 bytes but the file has 8192"}},
		{"tiny squashfs", func(t testing.TB) []byte { return []byte("hsqs\x00\x00\x00\x00") }, []string{"truncated squashfs", "superblock"}},
		{"tiny qcow2", func(t testing.TB) []byte { return []byte("QFI\xfb\x00\x00\x00\x03") }, []string{"truncated qcow2"}},
		{"xz not tar", func(t testing.TB) []byte { return xzBytes(t, bytes.Repeat([]byte("x"), 4096)) },
			[]string{"xz-compressed but not a tar archive"}},
		{"metadata as root", func(t testing.TB) []byte { return filetest.Read(t, imagetest.WriteMetadata(t, t.TempDir(), spec())) },
			[]string{"metadata tarball", "swap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			meta := imagetest.WriteMetadata(t, dir, spec())
			root := writeFile(t, dir, "rootfs.img", tc.root(t))
			checkErr(t, meta, root, "rootfs "+root+": ", tc.want)
		})
	}
}

func TestInspectMissingFiles(t *testing.T) {
	meta, root := validImage(t)
	dir := t.TempDir()
	nope := filepath.Join(dir, "nope")
	checkErr(t, nope, root, "metadata "+nope+": ", []string{"cannot open: no such file or directory; check the path"})
	checkErr(t, meta, nope, "rootfs "+nope+": ", []string{"cannot open: no such file or directory"})
	checkErr(t, dir, root, "metadata "+dir+": ", []string{"is a directory; pass the incus.tar.xz inside it"})
	checkErr(t, meta, dir, "rootfs "+dir+": ", []string{"is a directory"})
	if os.Geteuid() != 0 {
		locked := writeFile(t, dir, "locked", []byte("x"))
		os.Chmod(locked, 0)
		checkErr(t, locked, root, "metadata "+locked+": ", []string{"permission denied; check the file's permissions"})
	}
}

// checkErr runs Inspect and checks its error is one line starting with
// prefix and containing every string of want.
func checkErr(t *testing.T, meta, root, prefix string, want []string) {
	t.Helper()
	_, err := image.Inspect(context.Background(), meta, root, image.Options{})
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) || strings.ContainsAny(msg, "\n\r") {
		t.Errorf("error %q: want one line starting with %q", msg, prefix)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q: want it to contain %q", msg, w)
		}
	}
	t.Log(msg)
}

func ptr[T any](v T) *T { return &v }
