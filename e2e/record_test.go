package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/builder"
	"github.com/incus-appliance/registry/internal/image/imagetest"
	"github.com/incus-appliance/registry/internal/miniotest"
)

// `publish NAME` of a built appliance with its digest record, into MinIO
// (a multipart root): published as is, with no warning; then, with the
// root changed behind the record's back (same size and mtime), one
// warning line naming the file, and the files' real image published.
func TestPublishBuiltApplianceWithRecord(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"built"}})
	env := srv.Env()
	apps, builds := newApplianceRoot(t), t.TempDir()
	os.MkdirAll(filepath.Join(apps, "web"), 0o755)
	os.WriteFile(filepath.Join(apps, "web", "appliance.yaml"), []byte("name: web\ndescription: web server\nversion: 1.0.0\narchitectures: [amd64]\nbase: debian/bookworm\nhealthcheck:\n  command: [\"true\"]\n"), 0o644)
	os.WriteFile(filepath.Join(apps, "web", "image.yaml"), []byte("packages: [nginx-light]\n"), 0o644)
	built := builder.Target{Root: builds, Name: "web", Arch: "amd64"}
	dir, meta, root := built.Dir(), built.Metadata(), built.Rootfs()
	os.MkdirAll(dir, 0o755)
	build := func(created time.Time) { // what `publish build` leaves
		imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec("web", created))
		if err := builder.RecordDigests(context.Background(), dir); err != nil {
			t.Fatal(err)
		}
	}
	imagetest.WriteSquashfs(t, dir, 66<<20, 5) // multipart: over the 64 MiB threshold
	build(t0)
	args := []string{"web", "--bucket", "s3://built", "--appliances", apps, "--build-dir", builds}

	r := publishEnv(t, env, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("publish: exit %d, stderr %q", r.code, r.stderr)
	}
	mustPublishEnv(t, env, "verify", "--bucket", "s3://built")

	build(t0.Add(time.Hour))
	st, _ := os.Stat(root)
	f, err := os.OpenFile(root, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("changed"), 40<<20)
	f.Close()
	os.Chtimes(root, st.ModTime(), st.ModTime())

	r = publishEnv(t, env, args...)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if r.code != 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "publish: warning: ") || !strings.Contains(lines[0], root) {
		t.Fatalf("publish with a stale record: exit %d, stderr %q; want one warning naming %s", r.code, r.stderr, root)
	}
	t.Logf("%s", lines[0])
	want := fingerprintOf(t, meta, root)
	found := false
	for _, e := range listEnv(t, env, "s3://built") {
		found = found || e.Fingerprint == want
	}
	if !found {
		t.Errorf("the files' image %s is not listed: %+v", want, listEnv(t, env, "s3://built"))
	}
	mustPublishEnv(t, env, "verify", "--bucket", "s3://built")
}
