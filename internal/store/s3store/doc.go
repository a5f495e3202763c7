// Package s3store is the production store.Store: a registry kept in an AWS S3
// bucket, or in any S3-compatible store that honours conditional writes
// (MinIO, Cloudflare R2, ...), optionally under a key prefix.
//
// # Mapping
//
// Get is GetObject, Stat is HeadObject, List is a ListObjectsV2 walk under
// Prefix+"/"+prefix (keys come back relative to the registry root, sorted;
// objects whose names are not registry keys are skipped), Delete is
// DeleteObject. Put stores opts.SHA256 as the user metadata "sha256", so Get
// and Stat report ObjectInfo.SHA256 without reading the content (List does
// not: ListObjectsV2 carries no metadata), and ContentType / CacheControl as
// the object's own attributes. One function, mapErr, turns S3 error codes
// and HTTP statuses into the store sentinels.
//
// Configuration follows the AWS SDK's standard chain (AWS_PROFILE,
// AWS_REGION, AWS_ENDPOINT_URL[_S3], AWS_ACCESS_KEY_ID, AWS_CA_BUNDLE,
// shared config files...), overridden by Options. A custom endpoint means
// path-style addressing.
//
// # Conditional writes
//
// PutOptions.IfAbsent is sent as If-None-Match: * and PutOptions.IfMatch as
// If-Match with the ETag exactly as S3 returned it (quoted). The store decides
// atomically; a refused write is 412 → store.ErrPreconditionFailed, a
// concurrent conditional write in progress is 409 → store.ErrConflict, a
// store that cannot evaluate the condition answers 501 →
// store.ErrNotImplemented. Conditions are never emulated with a HEAD before
// the PUT, and both headers are never sent together. Beware the lost
// response: when the SDK retries a conditional write whose first response
// was lost although it was applied, the retry comes back 412; callers that
// must know should re-read and recognise their own write.
//
// # Uploads
//
// Bodies of at most Options.MultipartThreshold bytes go up in one PutObject.
// A body with io.ReaderAt or a working io.Seeker is hashed in a first pass
// and then sent from its own storage (an io.SectionReader from its current
// position); any other body (a stream, a pipe), of at most
// Options.PartSize bytes, is buffered in memory. The PUT carries
// x-amz-checksum-sha256 and the same digest as the signed SigV4 payload
// hash, so the store itself rejects bytes that differ from what was hashed,
// and the SDK does not read the body a third time to hash it.
//
// Larger bodies (and non-seekable bodies larger than PartSize) use a
// multipart upload: one reader fills part buffers sequentially, hashing the
// whole body as it goes, and Options.Concurrency workers upload the parts,
// each with its own SHA-256 checksum. Buffers come from a per-upload pool of
// Concurrency+1 buffers of PartSize bytes, so a Put never holds more than
// (Concurrency+1)×PartSize bytes of body in memory, whatever the object's
// size. (PartSize grows when the object would need more than 10,000 parts.)
// When the body ends, its length and digest are checked against size and
// opts.SHA256 before CompleteMultipartUpload, which carries the Put's
// condition; so a short, long or corrupt body, a failed condition, an
// upload error or a cancelled context never makes an object visible, and
// the upload is then aborted (with a fresh, bounded context) so that no
// parts linger. Parts are sent with UNSIGNED-PAYLOAD: the signed
// x-amz-checksum-sha256 header already binds the bytes, and the store then
// hashes each part once rather than twice.
//
// When the caller already hashed the body in parts (PutOptions.PartSHA256
// with PartSize, as `publish` does while inspecting an image) and the body
// has io.ReaderAt, the parts are read straight from the body, Concurrency
// at a time, and sent with those digests: no buffering and no hashing here,
// and the store verifies that every part is exactly what the caller hashed
// (a file changed since fails with store.ErrChecksumMismatch).
package s3store
