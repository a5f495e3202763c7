package miniotest

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestStartTLSRestart(t *testing.T) {
	s := Start(t, Options{TLS: true, Buckets: []string{"bucket1"}})
	ctx := context.Background()
	c := s.Client()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket1"), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bucket1"), Key: aws.String("k")}); err != nil {
		t.Fatalf("object lost across restart: %v", err)
	}
	if err := s.AllowAnonymousRead(ctx, "bucket1", "streams/"); err != nil {
		t.Fatal(err)
	}
}

// Options.Env reaches the server: with a KMS secret key, MinIO accepts a
// bucket default encryption of AES256 and encrypts new objects with it.
func TestEnvKMSSecretKeyEnablesSSE(t *testing.T) {
	s := Start(t, Options{Buckets: []string{"sse"}, Env: []string{KMSSecretKeyEnv()}})
	ctx := context.Background()
	c := s.Client()
	_, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{
		Bucket: aws.String("sse"),
		ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{Rules: []types.ServerSideEncryptionRule{{
			ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAes256},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sse"), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("sse"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	if head.ServerSideEncryption != types.ServerSideEncryptionAes256 {
		t.Fatalf("object encryption = %q, want AES256", head.ServerSideEncryption)
	}
}
