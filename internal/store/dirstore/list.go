package dirstore

import (
	"context"
	"errors"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/incus-appliance/registry/internal/store"
)

// List walks the directories that can hold keys with prefix, skipping
// dot-names, symlinks and anything that is not a regular file. It fills
// Size and ModTime; ETag, SHA256 and attributes come only from a valid
// metadata cache: List never reads file contents.
func (s *Store) List(ctx context.Context, prefix string) ([]store.ObjectInfo, error) {
	list, err := s.list(ctx, prefix)
	if err != nil {
		return nil, mapErr("list", prefix+"*", err)
	}
	return list, nil
}

func (s *Store) list(ctx context.Context, prefix string) ([]store.ObjectInfo, error) {
	if err := store.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rootfd, release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()

	// Start at the deepest directory the prefix names completely.
	dir, _ := path.Split(prefix)
	dir = strings.TrimSuffix(dir, "/")
	var dirs []string
	if dir != "" {
		dirs = strings.Split(dir, "/")
	}
	c, err := openChain(rootfd, dirs, false)
	if isNotExist(err) || errors.Is(err, errSymlink) {
		return nil, nil // List skips symlinks
	}
	if err != nil {
		return nil, err
	}
	defer c.close()

	w := walker{ctx: ctx, prefix: prefix}
	if err := w.walk(c.last(), ".", dir); err != nil {
		if isNotExist(err) { // removed meanwhile
			return nil, nil
		}
		return nil, err
	}
	sort.Slice(w.list, func(i, j int) bool { return w.list[i].Key < w.list[j].Key })
	return w.list, nil
}

type walker struct {
	ctx    context.Context
	prefix string
	list   []store.ObjectInfo
}

// walk lists the directory parent/name, whose key prefix is rel ("" for
// the root).
func (w *walker) walk(parent int, name, rel string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	fd, err := openat(parent, name, dirFlags, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), rel)
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // internal state, or not a valid key anyway
		}
		key := e.Name()
		if rel != "" {
			key = rel + "/" + key
		}
		switch {
		case e.IsDir():
			sub := key + "/"
			if strings.HasPrefix(sub, w.prefix) || strings.HasPrefix(w.prefix, sub) {
				if err := w.walk(fd, e.Name(), key); err != nil && !isNotExist(err) {
					return err
				}
			}
		case e.Type().IsRegular():
			if strings.HasPrefix(key, w.prefix) && store.ValidateKey(key) == nil {
				w.add(fd, e.Name(), key)
			}
		}
	}
	return nil
}

// add appends the info of the file parent/name, if it is still there.
func (w *walker) add(parent int, name, key string) {
	f, err := openObject(parent, name, key)
	if err != nil {
		return // deleted or replaced meanwhile
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	info := store.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}
	if m, ok := readMeta(f, fi); ok {
		info.ETag = etag(m.SHA256)
		info.SHA256 = m.SHA256
		info.ContentType = m.ContentType
		info.CacheControl = m.CacheControl
	}
	w.list = append(w.list, info)
}
