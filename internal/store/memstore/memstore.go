// Package memstore is an in-memory store.Store for tests and dry runs.
// Objects live in a map guarded by a mutex; bytes are copied in and out,
// so callers never share memory with the store.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
)

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	mu      sync.Mutex
	objects map[string]*object
}

type object struct {
	data []byte // never modified once stored
	info store.ObjectInfo
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.RangeReader = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{objects: make(map[string]*object)}
}

// Get returns a reader over a copy of the object's content.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, store.ObjectInfo, error) {
	obj, err := s.lookup(ctx, "get", key)
	if err != nil {
		return nil, store.ObjectInfo{}, err
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(obj.data))), obj.info, nil
}

// GetRange returns a reader over a copy of length bytes of the object
// from offset (fewer where the object ends sooner), when it still has
// etag (if given).
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64, etag string) (io.ReadCloser, error) {
	obj, err := s.lookup(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	switch {
	case offset < 0 || length <= 0:
		return nil, fmt.Errorf("get %s: invalid range: offset %d, length %d", key, offset, length)
	case etag != "" && obj.info.ETag != etag:
		return nil, fmt.Errorf("get %s: %w: ETag is %s, not %s", key, store.ErrPreconditionFailed, obj.info.ETag, etag)
	}
	size := int64(len(obj.data))
	part := obj.data[min(offset, size):min(offset+length, size)]
	return io.NopCloser(bytes.NewReader(bytes.Clone(part))), nil
}

// Stat returns the object's info.
func (s *Store) Stat(ctx context.Context, key string) (store.ObjectInfo, error) {
	obj, err := s.lookup(ctx, "stat", key)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	return obj.info, nil
}

func (s *Store) lookup(ctx context.Context, op, key string) (*object, error) {
	if err := store.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, key, err)
	}
	s.mu.Lock()
	obj := s.objects[key]
	s.mu.Unlock()
	if obj == nil {
		return nil, fmt.Errorf("%s %s: %w", op, key, store.ErrNotFound)
	}
	return obj, nil
}

// Put reads the whole body into memory, checks it, then stores it if the
// condition holds.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := store.ValidateKey(key); err != nil {
		return store.ObjectInfo{}, fmt.Errorf("put: %w", err)
	}
	info, err := s.put(ctx, key, body, size, opts)
	if err != nil {
		return store.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	return info, nil
}

func (s *Store) put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := store.CheckPut(ctx, size, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	data, err := io.ReadAll(io.LimitReader(store.ContextReader(ctx, body), size+1))
	if err != nil {
		return store.ObjectInfo{}, err
	}
	sha := digest.Of(data)
	if err := store.CheckBody(int64(len(data)), size, sha, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := store.BeforeCommit(ctx, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	info := store.ObjectInfo{
		Key:          key,
		Size:         size,
		ETag:         `"` + sha + `"`,
		ModTime:      time.Now(),
		SHA256:       sha,
		ContentType:  opts.ContentType,
		CacheControl: opts.CacheControl,
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return store.ObjectInfo{}, err
	}
	cur := s.objects[key]
	switch {
	case opts.IfAbsent && cur != nil:
		return store.ObjectInfo{}, store.ErrPreconditionFailed
	case opts.IfMatch != "" && cur == nil:
		return store.ObjectInfo{}, store.ErrNotFound
	case opts.IfMatch != "" && cur.info.ETag != opts.IfMatch:
		return store.ObjectInfo{}, fmt.Errorf("%w: ETag is %s, not %s", store.ErrPreconditionFailed, cur.info.ETag, opts.IfMatch)
	}
	s.objects[key] = &object{data: data, info: info}
	return info, nil
}

// List returns the objects whose key starts with prefix, sorted by key.
func (s *Store) List(ctx context.Context, prefix string) ([]store.ObjectInfo, error) {
	if err := store.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	s.mu.Lock()
	var list []store.ObjectInfo
	for key, obj := range s.objects {
		if strings.HasPrefix(key, prefix) {
			list = append(list, obj.info)
		}
	}
	s.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Key < list[j].Key })
	return list, nil
}

// Delete removes the object; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := store.ValidateKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	s.mu.Lock()
	delete(s.objects, key)
	s.mu.Unlock()
	return nil
}

// Close does nothing; the objects stay readable.
func (s *Store) Close() error { return nil }
