package dirstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"

	"github.com/incus-appliance/registry/internal/store"
	"golang.org/x/sys/unix"
)

// Put writes the body to a temp file, then renames it over the target
// under the lock if the condition holds. See the package documentation.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	info, err := s.put(ctx, key, body, size, opts)
	if err != nil {
		return store.ObjectInfo{}, mapErr("put", key, err)
	}
	return info, nil
}

func (s *Store) put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := validateKey(key); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := store.CheckPut(ctx, size, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	rootfd, release, err := s.acquire()
	if err != nil {
		return store.ObjectInfo{}, err
	}
	defer release()
	dirs, base := splitKey(key)

	// Fail fast, before reading the body, when the condition fails
	// already; it is checked again under the lock.
	if err := precheck(ctx, rootfd, dirs, base, key, opts); err != nil {
		return store.ObjectInfo{}, err
	}

	tmp, err := newTemp(rootfd)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	defer tmp.close()
	info, err := tmp.fill(ctx, body, size, opts)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	info.Key = key
	if err := store.BeforeCommit(ctx, opts); err != nil {
		return store.ObjectInfo{}, err
	}

	unlock, err := lock(rootfd)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return store.ObjectInfo{}, err
	}
	c, err := openChain(rootfd, dirs, true)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	defer c.close()
	if err := checkTarget(ctx, c.last(), base, key, opts); err != nil {
		c.undo()
		return store.ObjectInfo{}, err
	}
	if err := tmp.commit(c.last(), base); err != nil {
		c.undo()
		return store.ObjectInfo{}, err
	}
	if err := fsync(c.last()); err != nil {
		return store.ObjectInfo{}, &fs.PathError{Op: "fsync", Path: key, Err: err}
	}
	return info, nil
}

// precheck is checkTarget without the lock, on a path that may not exist.
func precheck(ctx context.Context, rootfd int, dirs []string, base, key string, opts store.PutOptions) error {
	if !opts.IfAbsent && opts.IfMatch == "" {
		return nil
	}
	c, err := openChain(rootfd, dirs, false)
	if isNotExist(err) {
		return checkCondition(ctx, -1, base, key, opts, false)
	}
	if err != nil {
		return err
	}
	defer c.close()
	return checkTarget(ctx, c.last(), base, key, opts)
}

// checkTarget checks that parent/base may be replaced by the object key
// under opts' condition.
func checkTarget(ctx context.Context, parent int, base, key string, opts store.PutOptions) error {
	var st unix.Stat_t
	err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "stat", Path: key, Err: err}
	}
	exists := err == nil
	if exists && uint32(st.Mode)&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("%q is a directory holding other objects", key)
	}
	return checkCondition(ctx, parent, base, key, opts, exists)
}

// checkCondition evaluates opts' condition against parent/base, which
// exists or not.
func checkCondition(ctx context.Context, parent int, base, key string, opts store.PutOptions, exists bool) error {
	switch {
	case opts.IfAbsent && exists:
		return store.ErrPreconditionFailed
	case opts.IfMatch == "":
		return nil
	case !exists:
		return store.ErrNotFound
	}
	f, err := openObject(parent, base, key)
	if isNotExist(err) {
		return store.ErrNotFound // deleted meanwhile (only without the lock)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := describe(ctx, f, key)
	if err != nil {
		return err
	}
	if info.ETag != opts.IfMatch {
		return fmt.Errorf("%w: current ETag is %s", store.ErrPreconditionFailed, info.ETag)
	}
	return nil
}

// fill copies size bytes from body into the temp file, verifies them,
// makes them durable and records the metadata cache. It returns the
// object's info, without Key.
func (t *temp) fill(ctx context.Context, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	h := sha256.New()
	// At most size+1 bytes: enough to notice a body that is too long.
	n, err := copyBuffer(ctx, io.MultiWriter(t.f, h), io.LimitReader(body, size+1))
	if err != nil {
		return store.ObjectInfo{}, err
	}
	digest := hexSum(h.Sum(nil))
	if err := store.CheckBody(n, size, digest, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := t.f.Sync(); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := t.f.Chmod(0o644); err != nil {
		return store.ObjectInfo{}, err
	}
	fi, err := t.f.Stat()
	if err != nil {
		return store.ObjectInfo{}, err
	}
	stored, err := writeMeta(t.f, meta{
		SHA256:       digest,
		Size:         size,
		MtimeNS:      fi.ModTime().UnixNano(),
		ContentType:  opts.ContentType,
		CacheControl: opts.CacheControl,
	})
	if err != nil {
		return store.ObjectInfo{}, err
	}
	info := store.ObjectInfo{Size: size, ETag: etag(digest), ModTime: fi.ModTime(), SHA256: digest}
	if stored {
		info.ContentType, info.CacheControl = opts.ContentType, opts.CacheControl
	}
	return info, nil
}
