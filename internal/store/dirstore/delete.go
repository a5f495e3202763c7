package dirstore

import (
	"context"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Delete removes the object's file under the lock, then the parent
// directories that became empty (never the root). A missing key, or a key
// naming a "directory" of other objects, is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.delete(ctx, key); err != nil {
		return mapErr("delete", key, err)
	}
	return nil
}

func (s *Store) delete(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	rootfd, release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	unlock, err := lock(rootfd)
	if err != nil {
		return err
	}
	defer unlock()

	dirs, base := splitKey(key)
	c, err := openChain(rootfd, dirs, false)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer c.close()
	parent := c.last()

	var st unix.Stat_t
	switch err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
		return nil
	case err != nil:
		return &fs.PathError{Op: "stat", Path: key, Err: err}
	}
	switch uint32(st.Mode) & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return nil // not an object
	default:
		return fmt.Errorf("%q is not a regular file", key)
	}
	if err := unix.Unlinkat(parent, base, 0); err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "remove", Path: key, Err: err}
	}
	if err := fsync(parent); err != nil {
		return &fs.PathError{Op: "fsync", Path: key, Err: err}
	}
	pruneEmpty(c)
	return nil
}

// undo removes the directories a failed Put made for nothing.
func (c *chain) undo() {
	if c.created {
		pruneEmpty(c)
	}
}

// pruneEmpty removes the chain's directories from the deepest up while
// they are empty. Failing to remove one (typically ENOTEMPTY) just stops.
func pruneEmpty(c *chain) {
	i := len(c.dirs) - 1
	for ; i >= 0; i-- {
		if unix.Unlinkat(c.parentOf(i), c.dirs[i], unix.AT_REMOVEDIR) != nil {
			break
		}
	}
	if i < len(c.dirs)-1 {
		fsync(c.parentOf(i + 1)) // best effort: the object is gone already
	}
}
