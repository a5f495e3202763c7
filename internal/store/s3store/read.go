package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/digest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/incus-appliance/registry/internal/store"
)

// metaSHA256 is the user-metadata key (x-amz-meta-sha256) holding the
// content's lowercase hex SHA-256.
const metaSHA256 = "sha256"

// Get opens the object with GetObject. The body streams from S3; the
// caller must close it.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, store.ObjectInfo, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return nil, store.ObjectInfo{}, mapErr("get", key, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &full})
	if err != nil {
		return nil, store.ObjectInfo{}, mapErr("get", key, err)
	}
	info := objectInfo(key, out.ContentLength, out.ETag, out.LastModified, out.Metadata,
		out.ContentType, out.CacheControl)
	return out.Body, info, nil
}

// Stat returns the object's info with HeadObject.
func (s *Store) Stat(ctx context.Context, key string) (store.ObjectInfo, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return store.ObjectInfo{}, mapErr("stat", key, err)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &full})
	if err != nil {
		return store.ObjectInfo{}, mapErr("stat", key, err)
	}
	return objectInfo(key, out.ContentLength, out.ETag, out.LastModified, out.Metadata,
		out.ContentType, out.CacheControl), nil
}

func objectInfo(key string, size *int64, etag *string, mod *time.Time, meta map[string]string,
	contentType, cacheControl *string) store.ObjectInfo {
	info := store.ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(size),
		ETag:         aws.ToString(etag),
		ModTime:      aws.ToTime(mod),
		ContentType:  aws.ToString(contentType),
		CacheControl: aws.ToString(cacheControl),
	}
	if sum := meta[metaSHA256]; digest.IsSHA256(sum) {
		info.SHA256 = sum
	}
	return info
}

// List walks ListObjectsV2 under the registry root + prefix. Objects whose
// names are not valid registry keys (written by something else) are
// skipped. SHA256 and the attributes stay empty: listings carry no
// metadata.
func (s *Store) List(ctx context.Context, prefix string) ([]store.ObjectInfo, error) {
	if err := store.ValidatePrefix(prefix); err != nil {
		return nil, mapErr("list", prefix, err)
	}
	full := s.root + prefix
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &full})
	var list []store.ObjectInfo
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, mapErr("list", prefix, err)
		}
		for _, obj := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(obj.Key), s.root)
			if !ok || store.ValidateKey(key) != nil {
				continue
			}
			list = append(list, store.ObjectInfo{
				Key:     key,
				Size:    aws.ToInt64(obj.Size),
				ETag:    aws.ToString(obj.ETag),
				ModTime: aws.ToTime(obj.LastModified),
			})
		}
	}
	// S3 lists in UTF-8 byte order already; keys are ASCII. Sort anyway:
	// some S3-compatible stores do not.
	slices.SortFunc(list, func(a, b store.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return list, nil
}

// Delete removes the object with DeleteObject; a missing key is success.
func (s *Store) Delete(ctx context.Context, key string) error {
	full, err := s.objectKey(key)
	if err != nil {
		return mapErr("delete", key, err)
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &full})
	if err != nil {
		if err = mapErr("delete", key, err); errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// GetRange reads length bytes from offset with a ranged GetObject, sent
// with If-Match when etag is given.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64, etag string) (io.ReadCloser, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return nil, mapErr("get", key, err)
	}
	if offset < 0 || length <= 0 {
		return nil, mapErr("get", key, fmt.Errorf("invalid range: offset %d, length %d", offset, length))
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &full, Range: aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))}
	if etag != "" {
		in.IfMatch = aws.String(etag)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, mapErr("get", key, err)
	}
	return out.Body, nil
}
