package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/delta/deltatest"
	"github.com/incus-appliance/registry/internal/image/imagetest"
	"github.com/incus-appliance/registry/internal/miniotest"
)

// sampleUpdate writes a new version of an image: prevRoot with a few
// bytes changed (as a rebuild with one changed file) and fresh metadata.
func sampleUpdate(t testing.TB, name string, created time.Time, prevRoot, change string) (meta, root string) {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(prevRoot)
	if err != nil {
		t.Fatal(err)
	}
	copy(data[len(data)/2:], change)
	root = filepath.Join(dir, "rootfs.squashfs")
	if err := os.WriteFile(root, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec(name, created)), root
}

// publishedDelta is what `publish --json` says about one delta.
type publishedDelta struct {
	Base   string `json:"base"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Listed bool   `json:"listed"`
	Note   string `json:"note"`
}

// publishDelta is what `publish --json` says about the deltas.
type publishDelta struct {
	Changed bool             `json:"changed"`
	Deltas  []publishedDelta `json:"deltas"`
}

// one returns the only delta, failing the test unless there is one.
func (p publishDelta) one(t testing.TB) publishedDelta {
	t.Helper()
	if len(p.Deltas) != 1 {
		t.Fatalf("deltas %+v, want one", p.Deltas)
	}
	return p.Deltas[0]
}

func publishJSON(t testing.TB, env []string, args ...string) publishDelta {
	t.Helper()
	var res publishDelta
	out := mustPublishEnv(t, env, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return res
}

// deltaLifecycle publishes three versions of nginx into bucket (each new
// one with a delta from each version before it: the default depth is 3),
// verifies deeply, prunes to 2 versions and checks that the deltas whose
// base left went with it.
func deltaLifecycle(t *testing.T, env []string, bucket string) {
	m1, r1 := sampleImage(t, "nginx", t0, 1)
	m2, r2 := sampleUpdate(t, "nginx", t0.Add(time.Hour), r1, "one changed file")
	m3, r3 := sampleUpdate(t, "nginx", t0.Add(2*time.Hour), r2, "another change")
	pub := func(m, r string) publishDelta {
		return publishJSON(t, env, "nginx", "--bucket", bucket, "--metadata", m, "--rootfs", r)
	}
	if res := pub(m1, r1); res.Deltas != nil {
		t.Fatalf("first version has a delta: %+v", res.Deltas)
	}
	d2 := pub(m2, r2).one(t)
	if !d2.Listed || d2.Base != "20261120_120000" || d2.Size <= 0 || d2.Size > 16<<10 {
		t.Fatalf("second version's delta = %+v, want a small listed delta from 20261120_120000", d2)
	}
	out := mustPublishEnv(t, env, "nginx", "--bucket", bucket, "--metadata", m3, "--rootfs", r3)
	if !strings.Contains(out, "delta from version 20261120_130000: ") || !strings.Contains(out, "delta from version 20261120_120000: ") {
		t.Errorf("publish output does not show the two deltas:\n%s", out)
	}
	if out := mustPublishEnv(t, env, "verify", "--bucket", bucket, "--deep"); !strings.Contains(out, "3 deltas decoded and checked") {
		t.Errorf("verify --deep:\n%s", out)
	}
	out = mustPublishEnv(t, env, "prune", "--bucket", bucket, "--keep", "2", "--grace", "0s", "--json")
	var pruned struct {
		Deleted []string `json:"deleted"`
	}
	if err := json.Unmarshal([]byte(out), &pruned); err != nil {
		t.Fatal(err)
	}
	if deltas := slices.DeleteFunc(pruned.Deleted, func(p string) bool { return !strings.HasSuffix(p, ".vcdiff") }); len(deltas) != 2 || !slices.Contains(deltas, d2.Path) {
		t.Errorf("prune --keep 2 deleted the deltas %v; want %s and the third version's delta from the version it removed", deltas, d2.Path)
	}
	if out := mustPublishEnv(t, env, "verify", "--bucket", bucket, "--deep"); !strings.Contains(out, "1 deltas decoded and checked") || !strings.Contains(out, ": 0 problems, 0 orphan files") {
		t.Errorf("verify --deep after prune:\n%s", out)
	}
}

func TestDeltaLifecycleDir(t *testing.T) {
	requireTool(t, "xdelta3")
	deltaLifecycle(t, nil, filepath.Join(t.TempDir(), "registry"))
}

func TestDeltaLifecycleS3(t *testing.T) {
	requireTool(t, "xdelta3")
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"deltas"}})
	deltaLifecycle(t, srv.Env(), "s3://deltas/registry")
}

// Bad delta input: each run exits non-zero with one clear line and leaves
// images.json byte-for-byte as it was; --no-delta publishes without
// xdelta3.
func TestBadDeltaInputChangesNothing(t *testing.T) {
	requireTool(t, "xdelta3")
	reg := filepath.Join(t.TempDir(), "registry")
	m1, r1 := sampleImage(t, "nginx", t0, 1)
	m2, r2 := sampleUpdate(t, "nginx", t0.Add(time.Hour), r1, "changed")
	m3, r3 := sampleUpdate(t, "nginx", t0.Add(2*time.Hour), r2, "changed again")
	mustPublish(t, "nginx", "--bucket", reg, "--metadata", m1, "--rootfs", r1)
	imagesJSON := filepath.Join(reg, "streams/v1/images.json")
	noTools := "PATH=" + t.TempDir()
	corrupting := "PATH=" + deltatest.CorruptingXdelta3Dir(t) + string(os.PathListSeparator) + os.Getenv("PATH")
	v2 := []string{"nginx", "--bucket", reg, "--metadata", m2, "--rootfs", r2}

	expectRefusal := func(t *testing.T, env []string, args []string, want string) {
		t.Helper()
		before, err := os.ReadFile(imagesJSON)
		if err != nil {
			t.Fatal(err)
		}
		r := publishEnv(t, env, args...)
		if r.code != 1 {
			t.Fatalf("exit %d, want 1\nstdout: %s", r.code, r.stdout)
		}
		lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "publish: error: ") || !strings.Contains(lines[0], want) {
			t.Errorf("stderr = %q\nwant one \"publish: error: ...\" line containing %q", r.stderr, want)
		}
		if after, err := os.ReadFile(imagesJSON); err != nil || !bytes.Equal(before, after) {
			t.Errorf("images.json changed (err %v)", err)
		}
	}
	t.Run("xdelta3 missing", func(t *testing.T) {
		expectRefusal(t, []string{noTools}, v2, "xdelta3 is not installed (apt-get install xdelta3); it makes the delta from version 20261120_120000")
	})
	t.Run("corrupt delta", func(t *testing.T) {
		expectRefusal(t, []string{corrupting}, v2, "delta does not reproduce the target")
	})
	t.Run("verify --deep without xdelta3", func(t *testing.T) {
		expectRefusal(t, []string{noTools}, []string{"verify", "--bucket", reg, "--deep"}, "xdelta3 is not installed")
	})

	// --no-delta needs no xdelta3.
	if res := publishJSON(t, []string{noTools}, append(v2, "--no-delta")...); !res.Changed || res.Deltas != nil {
		t.Fatalf("--no-delta publish without xdelta3 = %+v", res)
	}
	d3 := publishJSON(t, nil, "nginx", "--bucket", reg, "--metadata", m3, "--rootfs", r3, "--delta-depth", "1").one(t)
	if !d3.Listed {
		t.Fatalf("third version's delta = %+v", d3)
	}

	// A catalog whose delta names a version that is not there, and a
	// damaged delta file: verify names each in one line, changing nothing.
	catalogJSON, _ := os.ReadFile(imagesJSON)
	t.Run("delta_base not there", func(t *testing.T) {
		edited := bytes.Replace(catalogJSON, []byte(`"delta_base": "20261120_130000"`), []byte(`"delta_base": "20261119_000000"`), 1)
		if bytes.Equal(edited, catalogJSON) {
			t.Fatal("no delta_base to edit")
		}
		os.WriteFile(imagesJSON, edited, 0o644)
		defer os.WriteFile(imagesJSON, catalogJSON, 0o644)
		expectRefusal(t, nil, []string{"verify", "--bucket", reg}, "delta_base 20261119_000000 names a version that is not in the catalog")
	})
	t.Run("corrupt delta file", func(t *testing.T) {
		file := filepath.Join(reg, filepath.FromSlash(d3.Path))
		good, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(good)
		bad[len(bad)/2] ^= 0xff
		os.Chmod(file, 0o644)
		if err := os.WriteFile(file, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(file, good, 0o644)
		expectRefusal(t, nil, []string{"verify", "--bucket", reg}, d3.Path+" has sha256")
	})
	mustPublish(t, "verify", "--bucket", reg, "--deep")
}

// A publish making a delta, SIGKILLed during each of its requests (before
// or after the store applied it) — the download of the base root, the
// delta upload, between the delta upload and the commit, the commit —
// leaves a registry that verifies (deltas decoded), and publishing again
// succeeds.
func TestS3KilledDuringADeltaPublish(t *testing.T) {
	requireTool(t, "xdelta3")
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"crash"}})
	direct := srv.Env()
	h := newHop(t, srv.Endpoint)
	viaHop := s3Env(srv, h.URL)
	m0, prevRoot := sampleImage(t, "nginx", t0, 1)
	mustPublishEnv(t, direct, "nginx", "--bucket", "s3://crash", "--metadata", m0, "--rootfs", prevRoot)
	created := t0
	betweenUploadAndCommit := false
	for n := int64(1); ; n++ {
		for _, forwardFirst := range []bool{false, true} {
			created = created.Add(time.Minute)
			meta, root := sampleUpdate(t, "nginx", created, prevRoot, created.String())
			args := []string{"nginx", "--bucket", "s3://crash", "--metadata", meta, "--rootfs", root}
			what, killed := killDuringRequest(t, h, n, forwardFirst, viaHop, args)
			if !killed {
				// The publish needed fewer than n requests: every request of
				// a whole publish has been a kill point.
				if !betweenUploadAndCommit {
					t.Fatal("no kill fell between the delta upload and the commit")
				}
				mustPublishEnv(t, direct, "verify", "--bucket", "s3://crash", "--deep")
				return
			}
			h.setDecide(nil)
			if strings.HasSuffix(what, ".vcdiff") && strings.HasPrefix(what, "PUT") && forwardFirst {
				betweenUploadAndCommit = true
			}
			r := publishEnv(t, direct, "verify", "--bucket", "s3://crash", "--deep")
			if r.code != 0 {
				t.Fatalf("after SIGKILL during request %d (%s, applied=%v): verify failed:\n%s%s", n, what, forwardFirst, r.stdout, r.stderr)
			}
			// Publish again: the delta is listed (or the killed publish's
			// commit had landed: nothing to do).
			if res := publishJSON(t, direct, args...); res.Changed && (len(res.Deltas) == 0 || !res.Deltas[0].Listed) {
				t.Fatalf("publish after the kill: deltas %+v, want the one from the previous version listed", res.Deltas)
			}
			prevRoot = root
			t.Logf("killed during request %d %s (store applied it first: %v): verify --deep ok, publish again ok", n, what, forwardFirst)
		}
	}
}
