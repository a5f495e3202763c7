package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/incus-appliance/registry/internal/image/imagetest"
	"github.com/incus-appliance/registry/internal/miniotest"
)

// minioProvider points the root module's AWS provider at a MinIO (an
// override file: the production configuration stays as it is).
// Credentials come from the environment.
const minioProvider = `provider "aws" {
  region                      = %q
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true

  endpoints {
    s3 = %q
  }
}
`

// TestTerraformMinIO applies the MinIO-applicable subset of the root
// module (aws_only_resources = false: bucket, versioning, SSE-S3) to a
// MinIO, publishes an image into the bucket it made with the publish
// binary, verifies the registry, and destroys everything.
func TestTerraformMinIO(t *testing.T) {
	tf := requireTerraform(t)
	t.Parallel()
	srv := miniotest.Start(t, miniotest.Options{Env: []string{miniotest.KMSSecretKeyEnv()}})
	publish := buildPublish(t)
	dir := copyConfig(t)
	override := fmt.Sprintf(minioProvider, miniotest.Region, srv.Endpoint)
	if err := os.WriteFile(filepath.Join(dir, "minio_override.tf"), []byte(override), 0o644); err != nil {
		t.Fatal(err)
	}
	env := srv.Env()
	const bucket = "registry-tf"
	vars := []string{"-var", "bucket_name=" + bucket, "-var", "registry_prefix=incus",
		"-var", "aws_only_resources=false", "-var", "force_destroy=true"}

	tf.run(t, dir, env, "init", "-backend=false", "-input=false")
	tf.run(t, dir, env, append([]string{"apply", "-auto-approve", "-input=false"}, vars...)...)
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			if out, err := tf.try(t, dir, env, append([]string{"destroy", "-auto-approve", "-input=false"}, vars...)...); err != nil {
				t.Logf("terraform destroy: %v\n%s", err, out)
			}
		}
	})

	var outputs map[string]struct{ Value any }
	if err := json.Unmarshal([]byte(tf.run(t, dir, env, "output", "-json")), &outputs); err != nil {
		t.Fatal(err)
	}
	location, _ := outputs["bucket_location"].Value.(string)
	if location != "s3://"+bucket+"/incus" || outputs["distribution_id"].Value != nil || outputs["incus_remote_add"].Value != nil {
		t.Fatalf("outputs %+v: want bucket_location s3://%s/incus and no CloudFront", outputs, bucket)
	}

	ctx := context.Background()
	c := srv.Client()
	checkBucket(ctx, t, c, bucket)

	// publish into the bucket Terraform made, then verify it.
	imgDir := t.TempDir()
	meta := imagetest.WriteMetadata(t, imgDir, imagetest.DefaultSpec("nginx", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))
	root := imagetest.WriteSquashfs(t, imgDir, 256<<10, 1)
	runPublish(t, publish, env, "nginx", "--bucket", location, "--metadata", meta, "--rootfs", root)
	runPublish(t, publish, env, "verify", "--bucket", location)
	checkEncrypted(ctx, t, c, bucket, "incus/images/")

	tf.run(t, dir, env, append([]string{"destroy", "-auto-approve", "-input=false"}, vars...)...)
	destroyed = true
	var notFound *types.NotFound
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); !errors.As(err, &notFound) {
		t.Errorf("bucket after destroy: HeadBucket = %v, want NotFound", err)
	}
}

// checkBucket checks what Terraform configured on MinIO: versioning on,
// AES256 default encryption.
func checkBucket(ctx context.Context, t *testing.T, c *s3.Client, bucket string) {
	t.Helper()
	// MinIO applies bucket settings asynchronously: a read right after
	// terraform's write may not see them yet, so wait a little for both.
	var ver *s3.GetBucketVersioningOutput
	var enc *s3.GetBucketEncryptionOutput
	var err error
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(250 * time.Millisecond) {
		ver, err = c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(bucket)})
		if err == nil && ver.Status == types.BucketVersioningStatusEnabled {
			enc, err = c.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String(bucket)})
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if ver.Status != types.BucketVersioningStatusEnabled {
		t.Fatalf("versioning %q, want Enabled", ver.Status)
	}
	rules := enc.ServerSideEncryptionConfiguration.Rules
	if len(rules) != 1 || rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm != types.ServerSideEncryptionAes256 {
		t.Errorf("default encryption %+v, want AES256", rules)
	}
}

// checkEncrypted checks that the image files publish wrote under prefix
// are stored encrypted (the bucket default applied).
func checkEncrypted(ctx context.Context, t *testing.T, c *s3.Client, bucket, prefix string) {
	t.Helper()
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 2 {
		t.Fatalf("%d objects under %s, want 2 (metadata and root)", len(list.Contents), prefix)
	}
	for _, o := range list.Contents {
		head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		if head.ServerSideEncryption != types.ServerSideEncryptionAes256 {
			t.Errorf("%s: encryption %q, want AES256", aws.ToString(o.Key), head.ServerSideEncryption)
		}
	}
}

// buildPublish builds cmd/publish into a temp directory.
func buildPublish(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "publish")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/publish").CombinedOutput()
	if err != nil {
		t.Fatalf("build publish: %v\n%s", err, out)
	}
	return bin
}

// runPublish runs the publish binary and fails the test unless it exits 0.
func runPublish(t *testing.T, bin string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("publish %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("publish %s\n%s", args[0], out)
}
