package e2e

import (
	"bytes"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/image/imagetest"
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// sampleImage writes a small split image and returns its two paths.
func sampleImage(t testing.TB, name string, created time.Time, seed int64) (meta, root string) {
	t.Helper()
	dir := t.TempDir()
	return imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec(name, created)),
		imagetest.WriteSquashfs(t, dir, 256<<10+int(seed), seed)
}

// fingerprintOf is sha256(meta || root), computed independently.
func fingerprintOf(t testing.TB, files ...string) string {
	t.Helper()
	var parts [][]byte
	for _, f := range files {
		parts = append(parts, filetest.Read(t, f))
	}
	return digest.Of(parts...)
}

// sample is a sample image written for a test: its appliance name, its
// two files and its fingerprint.
type sample struct{ name, meta, root, fp string }

// versions writes n sample images of appliance name, an hour apart from
// t0 (seeds 1..n), oldest first.
func versions(t testing.TB, name string, n int) []sample {
	t.Helper()
	out := make([]sample, n)
	for i := range out {
		meta, root := sampleImage(t, name, t0.Add(time.Duration(i)*time.Hour), int64(i+1))
		out[i] = sample{name: name, meta: meta, root: root, fp: fingerprintOf(t, meta, root)}
	}
	return out
}

// publishVersions writes n versions of appliance name (see versions) and
// publishes them, oldest first, with publish's flags and environment.
func publishVersions(t testing.TB, env []string, name string, n int, flags ...string) []sample {
	t.Helper()
	v := versions(t, name, n)
	for _, s := range v {
		publishSample(t, env, s, flags...)
	}
	return v
}

// publishSample publishes s with publish's flags (--bucket ...) and extra
// environment, failing the test unless it exits 0.
func publishSample(t testing.TB, env []string, s sample, flags ...string) string {
	t.Helper()
	return mustPublishEnv(t, env, append([]string{s.name, "--metadata", s.meta, "--rootfs", s.root}, flags...)...)
}

// sameFile says whether the files a and b hold the same bytes.
func sameFile(t testing.TB, a, b string) bool {
	t.Helper()
	return bytes.Equal(filetest.Read(t, a), filetest.Read(t, b))
}
