package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/incus-appliance/registry/internal/miniotest"
)

// bareSDK uploads the file with transfermanager's defaults: the reference.
func bareSDK(ctx context.Context, srv *miniotest.Server, path, key string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tm := transfermanager.New(srv.Client())
	_, err = tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String("bench"), Key: aws.String(key), Body: f})
	return err
}

// checkedSDK uploads the file with transfermanager given publish's
// guarantees: 16 MiB parts, 4 at once (s3store's defaults), a SHA-256
// checksum on every part (computed by the SDK: it cannot take digests
// computed earlier), the whole file's SHA-256 checked before the upload
// completes (want, known beforehand as publish knows it; the body fails
// its last Read on a mismatch, which makes transfermanager abort), and
// If-None-Match: * on completion.
func checkedSDK(ctx context.Context, srv *miniotest.Server, path, want, key string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// Its best case: the payload is not signed (as s3store does: the signed
	// checksum header binds the bytes), so the SHA-256 of each part is
	// computed once on this side, not twice.
	client := s3.New(srv.Client().Options(), func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	})
	tm := transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes, o.Concurrency = 16<<20, 4
	})
	_, err = tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket: aws.String("bench"), Key: aws.String(key),
		Body:              &checkAtEOF{r: f, h: sha256.New(), want: want},
		ChecksumAlgorithm: tmtypes.ChecksumAlgorithmSha256,
		IfNoneMatch:       aws.String("*"),
	})
	return err
}

// checkAtEOF hashes what is read and turns the end of the body into an
// error when the digest is not want.
type checkAtEOF struct {
	r    io.Reader
	h    hash.Hash
	want string
}

func (c *checkAtEOF) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(c.h.Sum(nil)); got != c.want {
			return n, fmt.Errorf("body has sha256 %s, want %s", got, c.want)
		}
	}
	return n, err
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
