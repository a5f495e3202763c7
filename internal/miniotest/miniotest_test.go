package miniotest

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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
