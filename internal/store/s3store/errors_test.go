package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/incus-appliance/registry/internal/store"
)

// sdkError builds what the SDK returns for an HTTP error response: an
// OperationError around a ResponseError around the decoded API error (nil
// for a body-less answer, as to HEAD).
func sdkError(status int, code string) error {
	var inner error = errors.New("no body")
	if code != "" {
		inner = &smithy.GenericAPIError{Code: code, Message: "synthetic " + code}
	}
	return &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      inner,
		},
		RequestID: "req-1",
	}}
}

func TestMapErr(t *testing.T) {
	sentinels := []error{store.ErrNotFound, store.ErrPreconditionFailed, store.ErrConflict,
		store.ErrChecksumMismatch, store.ErrNotImplemented, store.ErrInvalidKey}
	cases := []struct {
		status int
		code   string
		want   error // nil: no sentinel
	}{
		{404, "NoSuchKey", store.ErrNotFound},
		{404, "NotFound", store.ErrNotFound},
		{404, "", store.ErrNotFound}, // HEAD
		{404, "NoSuchBucket", nil},
		{404, "NoSuchUpload", nil},
		{412, "PreconditionFailed", store.ErrPreconditionFailed},
		{412, "", store.ErrPreconditionFailed},
		{409, "ConditionalRequestConflict", store.ErrConflict},
		{409, "OperationAborted", store.ErrConflict},
		{400, "BadDigest", store.ErrChecksumMismatch},
		{400, "XAmzContentChecksumMismatch", store.ErrChecksumMismatch},
		{400, "InvalidDigest", store.ErrChecksumMismatch},
		{501, "NotImplemented", store.ErrNotImplemented},
		{501, "", store.ErrNotImplemented},
		{403, "AccessDenied", nil},
		{500, "InternalError", nil},
		{400, "InvalidArgument", nil},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%d-%s", c.status, c.code)
		orig := sdkError(c.status, c.code)
		err := mapErr("put", "streams/v1/index.json", orig)
		for _, s := range sentinels {
			if got := errors.Is(err, s); got != (s == c.want) {
				t.Errorf("%s: errors.Is(%v, %q) = %v", name, err, s, got)
			}
		}
		// The original stays in the chain, and the context is added once.
		if !errors.Is(err, orig) {
			t.Errorf("%s: the SDK error is not in the chain of %v", name, err)
		}
		if respErr, ok := errors.AsType[*awshttp.ResponseError](err); !ok || respErr.HTTPStatusCode() != c.status {
			t.Errorf("%s: no ResponseError with status %d in %v", name, c.status, err)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "put streams/v1/index.json: ") ||
			strings.Count(msg, "streams/v1/index.json") != 1 {
			t.Errorf("%s: message %q", name, msg)
		}
	}
}

func TestMapErrPassesThrough(t *testing.T) {
	err := mapErr("get", "k", fmt.Errorf("wrapped: %w", context.Canceled))
	if !errors.Is(err, context.Canceled) || err.Error() != "get k: wrapped: context canceled" {
		t.Errorf("mapErr(context.Canceled) = %v", err)
	}
	err = mapErr("put", "k", store.SizeMismatch(3, 5))
	if !errors.Is(err, store.ErrChecksumMismatch) || strings.Count(err.Error(), "checksum mismatch") != 1 {
		t.Errorf("mapErr(ErrChecksumMismatch) = %v", err)
	}
	err = mapErr("stat", "a//b", store.ValidateKey("a//b"))
	if !errors.Is(err, store.ErrInvalidKey) || strings.Count(err.Error(), "a//b") != 1 {
		t.Errorf("mapErr(ErrInvalidKey) = %v", err)
	}
}

func TestPartSize(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ size, min, want int64 }{
		{100 * mib, 16 * mib, 16 * mib},
		{160000 * mib, 16 * mib, 16 * mib},
		{160001 * mib, 16 * mib, 17 * mib},
		{1 << 40, 5 * mib, 105 * mib},
	} {
		got := partSize(c.size, c.min)
		if got != c.want || (c.size+got-1)/got > maxParts {
			t.Errorf("partSize(%d, %d) = %d, want %d", c.size, c.min, got, c.want)
		}
	}
}
