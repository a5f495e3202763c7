package dirstore

import (
	"context"
	"crypto/sha256"
	"io"
	"os"

	"github.com/incus-appliance/registry/internal/store"
)

// Get opens the object's file. The file is opened first and its info is
// taken from that descriptor, so a concurrent Put (which renames a new
// file into place) cannot make the info and the content disagree.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, store.ObjectInfo, error) {
	f, info, err := s.open(ctx, key)
	if err != nil {
		return nil, store.ObjectInfo{}, mapErr("get", key, err)
	}
	return f, info, nil
}

// Stat is Get without the content.
func (s *Store) Stat(ctx context.Context, key string) (store.ObjectInfo, error) {
	f, info, err := s.open(ctx, key)
	if err != nil {
		return store.ObjectInfo{}, mapErr("stat", key, err)
	}
	f.Close()
	return info, nil
}

func (s *Store) open(ctx context.Context, key string) (*os.File, store.ObjectInfo, error) {
	if err := validateKey(key); err != nil {
		return nil, store.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, store.ObjectInfo{}, err
	}
	rootfd, release, err := s.acquire()
	if err != nil {
		return nil, store.ObjectInfo{}, err
	}
	defer release()
	f, err := openKey(rootfd, key)
	if err != nil {
		return nil, store.ObjectInfo{}, err
	}
	info, err := describe(ctx, f, key)
	if err != nil {
		f.Close()
		return nil, store.ObjectInfo{}, err
	}
	return f, info, nil
}

// openKey opens the object's file below rootfd.
func openKey(rootfd int, key string) (*os.File, error) {
	dirs, base := splitKey(key)
	c, err := openChain(rootfd, dirs, false)
	if err != nil {
		return nil, err
	}
	defer c.close()
	return openObject(c.last(), base, key)
}

// describe returns the info of the open object f: from its metadata cache
// when valid, otherwise by hashing its content (with ReadAt, so f's offset
// stays at 0).
func describe(ctx context.Context, f *os.File, key string) (store.ObjectInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return store.ObjectInfo{}, err
	}
	m, ok := readMeta(f, fi)
	if !ok {
		h := sha256.New()
		if _, err := copyBuffer(ctx, h, io.NewSectionReader(f, 0, fi.Size())); err != nil {
			return store.ObjectInfo{}, err
		}
		m = meta{SHA256: hexSum(h.Sum(nil))}
	}
	return store.ObjectInfo{
		Key:          key,
		Size:         fi.Size(),
		ETag:         etag(m.SHA256),
		ModTime:      fi.ModTime(),
		SHA256:       m.SHA256,
		ContentType:  m.ContentType,
		CacheControl: m.CacheControl,
	}, nil
}
