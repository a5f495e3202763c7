package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/miniotest"
	"github.com/incus-appliance/registry/internal/simplestreams/sstest"
)

// A registry created with --catalog-shards keeps its products in several
// catalog files; the real incus and lxc clients merge them: they list
// every image, resolve an alias held in one file and export an image with
// its fingerprint checked. verify, remove and prune work on the whole.
func TestIncusClientReadsShardedRegistry(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{TLS: true, Buckets: []string{"public"}})
	ctx := context.Background()
	if err := srv.AllowAnonymousRead(ctx, "public", ""); err != nil {
		t.Fatal(err)
	}
	env := srv.Env()
	bucket, url := "s3://public/big", srv.Endpoint+"/public/big"
	names := []string{"nginx", "redis", "unbound", "postgresql", "mosquitto"}
	fps := map[string]string{}
	for i, n := range names {
		meta, root := sampleImage(t, n, t0, int64(i+1))
		args := []string{n, "--bucket", bucket, "--metadata", meta, "--rootfs", root, "--catalog-shards", "8"}
		if n == "redis" {
			args = append(args, "--alias", "cache")
		}
		mustPublishEnv(t, env, args...)
		fps[n] = fingerprintOf(t, meta, root)
	}
	meta, root := sampleImage(t, "nginx", t0.Add(time.Hour), 99)
	mustPublishEnv(t, env, "nginx", "--bucket", bucket, "--metadata", meta, "--rootfs", root)
	fps["nginx"] = fingerprintOf(t, meta, root)

	objs, err := srv.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("public"), Prefix: aws.String("big/streams/v1/images-")})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Contents) < 3 {
		t.Fatalf("%d product files written, want the products spread over several", len(objs.Contents))
	}
	// Another product claiming an alias held in another file is refused.
	meta, root = sampleImage(t, "caddy", t0, 50)
	if r := publishEnv(t, env, "caddy", "--bucket", bucket, "--metadata", meta, "--rootfs", root, "--alias", "cache"); r.code != 1 || !strings.Contains(r.stderr, `alias "cache" is already owned by product "redis:amd64"`) {
		t.Errorf("alias held by another file's product: exit %d, %s", r.code, r.stderr)
	}
	mustPublishEnv(t, env, "verify", "--bucket", bucket)

	incus := remoteClient(t, "incus", "big", url, srv.CertFile)
	got := incus.list(t, "big")
	if len(got) != len(names)+1 {
		t.Errorf("incus image list shows %d images, want %d: %v", len(got), len(names)+1, got)
	}
	if strings.Join(got[fps["redis"]], ",") != "cache,cache/amd64,redis,redis/amd64" {
		t.Errorf("redis aliases = %v", got[fps["redis"]])
	}
	incus.wantInfo(t, "big:cache", fps["redis"])
	incus.wantExport(t, "big:nginx", fps["nginx"])
	lxc := remoteClient(t, "lxc", "big", url, srv.CertFile)
	if got := lxc.list(t, "big"); len(got) != len(names)+1 {
		t.Errorf("lxc image list = %v", got)
	}

	// Remove and prune on the whole.
	mustPublishEnv(t, env, "remove", "unbound", "--bucket", bucket)
	mustPublishEnv(t, env, "prune", "--keep", "1", "--grace", "0s", "--bucket", bucket)
	mustPublishEnv(t, env, "verify", "--bucket", bucket)
	incus2 := remoteClient(t, "incus", "big", url, srv.CertFile)
	if got := incus2.list(t, "big"); len(got) != len(names)-1 {
		t.Errorf("after removing unbound and keeping 1 version: incus lists %d images, want %d: %v", len(got), len(names)-1, got)
	}
}

// A mirror of an images.linuxcontainers.org-shaped tree into a registry of
// 8 catalog files, served by edgeproxy: the real incus client lists every
// image of every file and exports one with its fingerprint checked; a
// second mirror sends nothing.
func TestShardedMirrorThroughEdgeproxy(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"mirror"}})
	env := srv.Env()
	dest := "s3://mirror/big"
	tree := t.TempDir()
	built := sstest.Build(sstest.Spec{Products: 16, Versions: 2, FileSize: 4096})
	filetest.WriteTree(t, tree, built.Files)
	rep := runMirror(t, env, tree, "--bucket", dest, "--catalog-shards", "8")
	if rep.Copied != 32 || len(rep.Failed) != 0 {
		t.Fatalf("mirror into 8 catalog files: %+v", rep)
	}
	mustPublishEnv(t, env, "verify", "--bucket", dest)
	if rep := runMirror(t, env, tree, "--bucket", dest); rep.Files != 0 || rep.Unchanged != 32 {
		t.Errorf("second mirror: %+v, want 0 files and 32 unchanged", rep)
	}

	url, cert := runEdgeproxy(t, env, "--bucket", dest)
	incus := remoteClient(t, "incus", "m", url, cert)
	got := incus.list(t, "m")
	fp := wantTreeListed(t, got, built.Catalog, "")
	incus.wantExport(t, "m:"+fp, fp)
}
