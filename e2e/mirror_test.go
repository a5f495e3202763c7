package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/miniotest"
	"github.com/incus-appliance/registry/internal/simplestreams/sstest"
)

type mirrorReport struct {
	Versions, Copied, Unchanged, Files, Skipped int
	Bytes                                       int64
	Failed                                      []struct{ Product, Version, Error string }
}

func runMirror(t *testing.T, env []string, args ...string) mirrorReport {
	t.Helper()
	out := mustPublishEnv(t, env, append([]string{"mirror", "--json"}, args...)...)
	var rep mirrorReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("mirror --json: %v\n%s", err, out)
	}
	return rep
}

// Three kinds of trees mirrored into one MinIO registry: one written by
// the real incus-simplestreams (read over HTTPS, trusted through
// SSL_CERT_FILE), one of ours (a directory), and one shaped like
// images.linuxcontainers.org (':' in versions and paths, deltas,
// root.tar.xz, disk-kvm.img; filtered to amd64). verify is clean, a second
// run sends 0 bytes, and the real incus client lists, shows and exports
// the mirrored images through edgeproxy.
func TestMirrorServesIncusThroughEdgeproxy(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"mirror"}})
	env := srv.Env()
	dest := "s3://mirror/reg"

	// incus-simplestreams' tree, served over HTTPS.
	ssTree := t.TempDir()
	fm, fr := foreignImage(t, t0, 7)
	simplestreams(t, ssTree, "add", fm, fr)
	fpForeign := fingerprintOf(t, fm, fr)
	ssURL, ssCert := serveHTTPS(t, ssTree)

	// Our tree.
	ours := filepath.Join(t.TempDir(), "ours")
	m1, r1 := sampleImage(t, "nginx", t0, 1)
	mustPublish(t, "nginx", "--bucket", ours, "--metadata", m1, "--rootfs", r1, "--alias", "web")
	fpOurs := fingerprintOf(t, m1, r1)

	// An images.linuxcontainers.org-shaped tree: 12 products, 2 versions.
	lxcTree := t.TempDir()
	built := sstest.Build(sstest.Spec{Products: 12, Versions: 2, FileSize: 4096})
	filetest.WriteTree(t, lxcTree, built.Files)

	rep := runMirror(t, append(env, "SSL_CERT_FILE="+ssCert), ssURL, "--bucket", dest)
	if rep.Copied != 1 || len(rep.Failed) != 0 || rep.Files != 2 {
		t.Fatalf("mirror of the incus-simplestreams tree: %+v", rep)
	}
	if rep := runMirror(t, env, ours, "--bucket", dest); rep.Copied != 1 || len(rep.Failed) != 0 {
		t.Fatalf("mirror of our tree: %+v", rep)
	}
	amd64 := 0
	for _, p := range built.Catalog.Products {
		if p.Arch == "amd64" {
			amd64 += len(p.Versions)
		}
	}
	rep = runMirror(t, env, lxcTree, "--bucket", dest, "--filter", "arch=amd64")
	if amd64 == 0 || amd64 == 24 || rep.Versions != amd64 || rep.Copied != amd64 || len(rep.Failed) != 0 {
		t.Fatalf("mirror of the linuxcontainers-shaped tree, amd64 only: %+v", rep)
	}
	r := publishEnv(t, env, "verify", "--bucket", dest)
	if r.code != 0 {
		t.Fatalf("verify of the mirror: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Incremental: nothing sent again.
	rep = runMirror(t, env, lxcTree, "--bucket", dest, "--filter", "arch=amd64")
	if rep.Files != 0 || rep.Bytes != 0 || rep.Unchanged != amd64 {
		t.Errorf("second mirror: %+v, want 0 files, 0 bytes, %d unchanged", rep, amd64)
	}

	// Served by edgeproxy to the real incus client.
	url, cert := runEdgeproxy(t, env, "--bucket", dest)
	incus := remoteClient(t, "incus", "m", url, cert)
	got := incus.list(t, "m")
	lxcFP := wantTreeListed(t, got, built.Catalog, "amd64")
	for _, fp := range []string{fpForeign, fpOurs} {
		if _, ok := got[fp]; !ok {
			t.Errorf("incus does not list mirrored image %s: %v", fp[:12], got)
		}
	}
	incus.wantInfo(t, "m:web", fpOurs)
	incus.wantInfo(t, "m:alpine/3.20/cloud", fpForeign)
	for _, fp := range []string{fpForeign, lxcFP} {
		incus.wantExport(t, "m:"+fp, fp)
	}
}

// Bad sources through the CLI: one clear line, exit 1, nothing written.
func TestMirrorBadSourceCLI(t *testing.T) {
	src := t.TempDir()
	built := sstest.Build(sstest.Spec{Products: 2, Versions: 1, FileSize: 100})
	filetest.WriteTree(t, src, built.Files)
	os.WriteFile(filepath.Join(src, "streams/v1/images.json"), []byte("<html>oops</html>"), 0o644)
	dest := filepath.Join(t.TempDir(), "reg")
	r := publish(t, "mirror", src, "--bucket", dest)
	if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "invalid JSON") {
		t.Errorf("mirror of a non-JSON catalog: exit %d, stderr %q", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(filepath.Join(dest, "images")); len(entries) != 0 {
		t.Errorf("a refused mirror wrote %d entries under images/", len(entries))
	}
}

// SIGKILL at several moments of a mirror: whatever was visible is valid
// (verify passes whenever a catalog exists), and a rerun completes with a
// clean verify, sending only what was missing.
func TestMirrorKilledThenResumed(t *testing.T) {
	src := t.TempDir()
	built := sstest.Build(sstest.Spec{Products: 3, Versions: 2, FileSize: 4 << 20})
	filetest.WriteTree(t, src, built.Files)
	total := len(built.Files) - 2
	for _, delay := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond, time.Second} {
		dest := filepath.Join(t.TempDir(), "reg")
		cmd := exec.Command(publishBin, "mirror", src, "--bucket", dest)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay) // a kill point, not a timing assumption
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if _, err := os.Stat(filepath.Join(dest, "streams/v1/images.json")); err == nil {
			if r := publish(t, "verify", "--bucket", dest); r.code != 0 {
				t.Errorf("killed after %s: verify exit %d\n%s", delay, r.code, r.stdout)
			}
		}
		rep := runMirror(t, nil, src, "--bucket", dest)
		stored := 0
		for range filetest.Snapshot(t, filepath.Join(dest, "images")) {
			stored++
		}
		if len(rep.Failed) != 0 || rep.Copied+rep.Unchanged != 6 || stored != total {
			t.Errorf("killed after %s: rerun %+v, %d files stored; want 6 versions and %d files", delay, rep, stored, total)
		}
		mustPublish(t, "verify", "--bucket", dest)
	}
}
