package s3store

import (
	"errors"
	"fmt"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/incus-appliance/registry/internal/store"
)

// mapErr is the one place where S3 errors become store sentinels. It adds
// the "op key" context, once, and keeps err in the chain, so both
// errors.Is(result, store.ErrX) and errors.As(result, &smithy.APIError)
// work.
func mapErr(op, key string, err error) error {
	if errors.Is(err, store.ErrInvalidKey) {
		return fmt.Errorf("%s: %w", op, err) // the error names the key already
	}
	if sentinel := classify(err); sentinel != nil && !errors.Is(err, sentinel) {
		return fmt.Errorf("%s %s: %w: %w", op, key, sentinel, err)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

// classify returns the sentinel an S3 error stands for, or nil. There are
// no modelled SDK types for 412 and 409: the code and the HTTP status are
// all there is (HEAD responses carry no body, so no code either).
func classify(err error) error {
	code, status := errorCode(err)
	switch code {
	case "NoSuchKey", "NotFound":
		return store.ErrNotFound
	case "NoSuchBucket", "NoSuchUpload":
		// 404 too, but not "the object does not exist": a missing
		// bucket must not look like an empty registry.
		return nil
	case "PreconditionFailed":
		return store.ErrPreconditionFailed
	case "ConditionalRequestConflict":
		return store.ErrConflict
	case "BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest", "XAmzContentSHA256Mismatch":
		return store.ErrChecksumMismatch
	case "NotImplemented":
		return store.ErrNotImplemented
	}
	switch status {
	case http.StatusNotFound:
		return store.ErrNotFound
	case http.StatusPreconditionFailed:
		return store.ErrPreconditionFailed
	case http.StatusConflict:
		return store.ErrConflict
	case http.StatusNotImplemented:
		return store.ErrNotImplemented
	}
	return nil
}

// errorCode returns the S3 error code and HTTP status in err's chain, when
// present.
func errorCode(err error) (code string, status int) {
	if apiErr, ok := errors.AsType[smithy.APIError](err); ok {
		code = apiErr.ErrorCode()
	}
	if respErr, ok := errors.AsType[*awshttp.ResponseError](err); ok {
		status = respErr.HTTPStatusCode()
	}
	return code, status
}
