package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/miniotest"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/store/s3store"
)

// s3Env is the environment a publish process needs for server s, talking
// to endpoint (MinIO itself, or a hop in front of it).
func s3Env(s *miniotest.Server, endpoint string) []string {
	env := s.Env()
	return append(env, "AWS_ENDPOINT_URL="+endpoint)
}

// publishArgs publishes a fresh sample image of appliance name.
func publishArgs(t testing.TB, bucket, name string, created time.Time, seed int64, extra ...string) []string {
	meta, root := sampleImage(t, name, created, seed)
	return append([]string{name, "--bucket", bucket, "--metadata", meta, "--rootfs", root}, extra...)
}

// 32 publishers in one process, each with its own S3 client, publish
// several versions each into one MinIO bucket: every version lands.
func TestS3ConcurrentPublishersWithSeparateClients(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"concurrent"}})
	srv.SetEnv(t)
	ctx := context.Background()
	const publishers, versions = 32, 3
	reqs := make([][]registry.PublishRequest, publishers)
	for i := range publishers {
		for v := range versions {
			name := fmt.Sprintf("app%02d", i)
			meta, root := sampleImage(t, name, t0.Add(time.Duration(v)*time.Hour), int64(i*10+v))
			im, err := image.Inspect(ctx, meta, root, image.Options{})
			if err != nil {
				t.Fatal(err)
			}
			reqs[i] = append(reqs[i], registry.PublishRequest{Image: im.CatalogImage(name, nil, nil), MetadataPath: meta, RootPath: root})
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	retries := 0
	errs := make(chan error, publishers)
	for i := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := s3store.New(ctx, s3store.Options{Bucket: "concurrent"})
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			r := registry.New(st)
			for _, req := range reqs[i] {
				res, err := r.Publish(ctx, req)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", req.Image.Name, err)
					return
				}
				mu.Lock()
				retries += res.Retries
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	env := srv.Env()
	es := listEnv(t, env, "s3://concurrent")
	if len(es) != publishers*versions {
		t.Errorf("catalog has %d images, want %d", len(es), publishers*versions)
	}
	mustPublishEnv(t, env, "verify", "--bucket", "s3://concurrent")
	t.Logf("32 publishers × %d versions on MinIO: %d catalog writes lost a race and were retried", versions, retries)
}

// 8 separate publish processes, 3 versions each, on one bucket.
func TestS3EightPublishProcesses(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"procs"}})
	env := srv.Env()
	const procs, versions = 8, 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	retries := 0
	for p := range procs {
		args := make([][]string, versions)
		for v := range versions {
			args[v] = publishArgs(t, "s3://procs", fmt.Sprintf("proc%d", p), t0.Add(time.Duration(v)*time.Hour), int64(p*10+v), "--json")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, a := range args {
				r := publishEnv(t, env, a...)
				if r.code != 0 {
					t.Errorf("publish %s: exit %d: %s", a[0], r.code, r.stderr)
					return
				}
				var res struct{ Retries int }
				json.Unmarshal([]byte(r.stdout), &res)
				mu.Lock()
				retries += res.Retries
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if es := listEnv(t, env, "s3://procs"); len(es) != procs*versions {
		t.Errorf("catalog has %d images, want %d", len(es), procs*versions)
	}
	mustPublishEnv(t, env, "verify", "--bucket", "s3://procs")
	t.Logf("8 processes × %d versions: %d catalog writes retried", versions, retries)
}

// MinIO applies a conditional catalog write but its response is lost: the
// SDK retries, gets 412, and the publish still succeeds, once.
func TestS3LostResponseOfCatalogWrite(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"lost"}})
	h := newHop(t, srv.Endpoint)
	env := s3Env(srv, h.URL)
	mustPublishEnv(t, env, publishArgs(t, "s3://lost", "nginx", t0, 1)...)

	// Lose the reply to the first attempt of every conditional catalog
	// write; the SDK's retry of it then meets 412 (the write had landed).
	var mu sync.Mutex
	var writes, dropped []int64
	h.setDecide(func(n int64, r *http.Request) verdict {
		if !isCatalogWrite(r) || r.Header.Get("If-Match") == "" {
			return verdict{}
		}
		mu.Lock()
		defer mu.Unlock()
		writes = append(writes, n)
		if len(dropped) == 0 || dropped[len(dropped)-1] != n-1 {
			dropped = append(dropped, n)
			return verdict{dropResponse: true}
		}
		return verdict{}
	})
	r := publishEnv(t, env, publishArgs(t, "s3://lost", "nginx", t0.Add(time.Hour), 2, "--json")...)
	h.setDecide(nil)
	if r.code != 0 {
		t.Fatalf("publish after lost responses: exit %d: %s", r.code, r.stderr)
	}
	if strings.Count(r.stdout, `"fingerprint"`) != 1 {
		t.Errorf("publish reported %d results, want exactly one:\n%s", strings.Count(r.stdout, `"fingerprint"`), r.stdout)
	}
	saw412 := 0
	for _, n := range dropped {
		if h.statusOf(n) != 200 {
			t.Errorf("dropped catalog write %d was not applied by MinIO (status %d)", n, h.statusOf(n))
		}
		if h.statusOf(n+1) == http.StatusPreconditionFailed {
			saw412++
		}
	}
	if len(dropped) < 2 || saw412 < 2 {
		t.Fatalf("dropped %v (of catalog writes %v), %d retried into 412: the trap was not reproduced", dropped, writes, saw412)
	}
	es := listEnv(t, env, "s3://lost")
	if len(es) != 2 {
		t.Errorf("catalog has %d images, want 2 (the new image exactly once): %+v", len(es), es)
	}
	mustPublishEnv(t, env, "verify", "--bucket", "s3://lost")
	t.Logf("catalog writes %v: responses of %v lost, SDK retries answered 412, publish succeeded once", writes, dropped)
}

// A publish process SIGKILLed at 20 different moments — during an upload,
// between upload and commit, during a commit; before or after the store
// applied the request in flight — leaves a registry that verifies, and the
// next publish succeeds.
func TestS3KilledAtTwentyMoments(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"crash"}})
	direct := srv.Env()
	h := newHop(t, srv.Endpoint)
	viaHop := s3Env(srv, h.URL)
	mustPublishEnv(t, direct, publishArgs(t, "s3://crash", "base", t0, 1)...)
	moments := 0
	for n := int64(1); ; n++ {
		for _, forwardFirst := range []bool{false, true} {
			mode := map[bool]string{false: "before", true: "after"}[forwardFirst]
			name := fmt.Sprintf("crash%02d-%s", n, mode)
			args := publishArgs(t, "s3://crash", name, t0, 100+n*2+int64(len(mode)))
			what, killed := killDuringRequest(t, h, n, forwardFirst, viaHop, args)
			if !killed {
				// The publish needed fewer than n requests: every request of
				// a whole publish has been a kill point.
				if moments < 20 {
					t.Fatalf("only %d kill moments in a publish, want 20", moments)
				}
				mustPublishEnv(t, direct, "verify", "--bucket", "s3://crash")
				return
			}
			moments++
			h.setDecide(nil)
			r := publishEnv(t, direct, "verify", "--bucket", "s3://crash")
			if r.code != 0 {
				t.Fatalf("after SIGKILL during request %d (%s, applied=%v): verify failed:\n%s%s", n, what, forwardFirst, r.stdout, r.stderr)
			}
			mustPublishEnv(t, direct, args...)
			t.Logf("moment %2d: killed during request %d %s (store applied it first: %v): verify ok, publish again ok", moments, n, what, forwardFirst)
		}
	}
}

// MinIO stops in the middle of a publish and comes back: the publish either
// completes after retries or fails with one clear line, and the registry
// stays valid.
func TestS3StoreRestartDuringPublish(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"restart"}})
	env := srv.Env()
	h := newHop(t, srv.Endpoint)
	mustPublishEnv(t, env, publishArgs(t, "s3://restart", "base", t0, 1)...)
	var once sync.Once
	restarted := make(chan error, 1)
	h.setDecide(func(n int64, r *http.Request) verdict {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/rootfs.squashfs") {
			once.Do(func() {
				srv.Stop()
				go func() {
					time.Sleep(1500 * time.Millisecond)
					restarted <- srv.Restart()
				}()
			})
		}
		return verdict{}
	})
	r := publishEnv(t, s3Env(srv, h.URL), publishArgs(t, "s3://restart", "nginx", t0, 2)...)
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	if r.code != 0 {
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "publish: error: ") {
			t.Errorf("failed publish must print one clear line, got:\n%s", r.stderr)
		}
		t.Logf("publish failed cleanly while MinIO restarted: %s", r.stderr)
	} else {
		t.Log("publish completed after MinIO came back")
	}
	mustPublishEnv(t, env, "verify", "--bucket", "s3://restart")
	mustPublishEnv(t, env, publishArgs(t, "s3://restart", "nginx", t0.Add(time.Hour), 3)...)
	mustPublishEnv(t, env, "verify", "--bucket", "s3://restart")
}

// Republishing an unchanged image sends 0 bytes and takes a few requests.
func TestS3RepublishUploadsNothing(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"again"}})
	h := newHop(t, srv.Endpoint)
	env := s3Env(srv, h.URL)
	args := publishArgs(t, "s3://again", "nginx", t0, 1)
	mustPublishEnv(t, env, args...)
	h.requests.Store(0)
	h.uploaded.Store(0)
	mustPublishEnv(t, env, args...)
	if got := h.uploaded.Load(); got != 0 {
		t.Errorf("republish uploaded %d bytes, want 0 (requests: %v)", got, h.requestLog())
	}
	if n := h.requests.Load(); n > 2 {
		t.Errorf("republish took %d requests, want at most 2: %v", n, h.requestLog()[len(h.requestLog())-int(n):])
	}
}

// The real Incus (and LXD) client reads a registry straight from a MinIO
// bucket over HTTPS with anonymous read, at the bucket root and under a
// key prefix.
func TestIncusClientReadsRegistryFromMinIO(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{TLS: true, Buckets: []string{"public"}})
	ctx := context.Background()
	if err := srv.AllowAnonymousRead(ctx, "public", ""); err != nil {
		t.Fatal(err)
	}
	env := srv.Env() // carries AWS_CA_BUNDLE (the SDK trap) for the TLS endpoint
	for _, loc := range []struct{ bucket, url string }{
		{"s3://public", srv.Endpoint + "/public"},
		{"s3://public/team/registry", srv.Endpoint + "/public/team/registry"},
	} {
		t.Run(strings.TrimPrefix(loc.bucket, "s3://"), func(t *testing.T) {
			v := versions(t, "nginx", 2)
			publishNginxAndWeb(t, env, v, "--bucket", loc.bucket)
			remoteClient(t, "incus", "minio", loc.url, srv.CertFile).wantNginxAndWeb(t, "minio", v)
			lxc := remoteClient(t, "lxc", "minio", loc.url, srv.CertFile)
			if got := lxc.list(t, "minio"); len(got) != 2 {
				t.Errorf("%s: lxc image list = %v", loc.url, got)
			}
		})
	}
}

// A store that answers 501 to conditional writes (as some S3-compatible
// stores do) is refused before the registry is created, with one clear
// line naming the way out. (A store that silently ignores the headers is
// covered by the registry package's tests: signed headers cannot be
// stripped by a hop.)
func TestS3StoreWithoutConditionalWritesIsRefused(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"noconds"}})
	h := newHop(t, srv.Endpoint)
	h.setDecide(func(n int64, r *http.Request) verdict {
		if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Match") != "" {
			return verdict{answer: http.StatusNotImplemented}
		}
		return verdict{}
	})
	env := s3Env(srv, h.URL)
	args := publishArgs(t, "s3://noconds", "nginx", t0, 1)
	r := publishEnv(t, env, args...)
	if r.code == 0 || !strings.Contains(r.stderr, "does not honour conditional writes") || !strings.Contains(r.stderr, "--allow-unconditional-store") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("publish to a store without conditional writes: exit %d, stderr %q", r.code, r.stderr)
	}
	if objs := h.requestLog(); len(objs) == 0 {
		t.Fatal("no request reached the store")
	}
	if _, err := srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("noconds"), Key: aws.String("streams/v1/images.json")}); err == nil {
		t.Error("the refused publish created images.json")
	}
	// Once the store honours them, the same publish goes through.
	h.setDecide(nil)
	mustPublishEnv(t, env, args...)
	mustPublishEnv(t, env, "verify", "--bucket", "s3://noconds")
}
