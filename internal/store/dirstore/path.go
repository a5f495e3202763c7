package dirstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/incus-appliance/registry/internal/store"
	"golang.org/x/sys/unix"
)

const (
	dirFlags  = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fileFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK // no blocking on a FIFO
)

// errSymlink is the reason for refusing a path that runs through a
// symbolic link.
var errSymlink = errors.New("symbolic link, which dirstore never follows")

// nameMax is the longest file name (path segment) common file systems
// accept.
const nameMax = 255

// validateKey is store.ValidateKey plus the file system's limit on a
// segment's length, so that such keys are invalid for every operation
// rather than missing for some and failing for others.
func validateKey(key string) error {
	if err := store.ValidateKey(key); err != nil {
		return err
	}
	for _, seg := range strings.Split(key, "/") {
		if len(seg) > nameMax {
			return fmt.Errorf("%w %q: segment longer than %d bytes, the file system limit", store.ErrInvalidKey, key, nameMax)
		}
	}
	return nil
}

// splitKey splits a valid key into its directory segments and base name.
func splitKey(key string) (dirs []string, base string) {
	segs := strings.Split(key, "/")
	return segs[:len(segs)-1], segs[len(segs)-1]
}

// chain is the open directories from the root down to some directory:
// fds[i] is the directory dirs[:i+1]. The root itself is not included.
type chain struct {
	rootfd  int
	dirs    []string
	fds     []int
	created bool // openChain made at least one directory
}

// last returns the deepest directory's descriptor (the root when empty).
func (c *chain) last() int { return c.parentOf(len(c.fds)) }

// parentOf returns the descriptor of the directory holding dirs[i].
func (c *chain) parentOf(i int) int {
	if i == 0 {
		return c.rootfd
	}
	return c.fds[i-1]
}

func (c *chain) close() {
	for _, fd := range c.fds {
		unix.Close(fd)
	}
	c.fds = nil
}

// openChain opens dirs one component at a time below rootfd, never
// following a symbolic link. With create, missing directories are made
// (mode 0755) and their parents fsynced; without it a missing directory is
// an fs.ErrNotExist error and a non-directory a syscall.ENOTDIR one.
func openChain(rootfd int, dirs []string, create bool) (*chain, error) {
	c := &chain{rootfd: rootfd, dirs: dirs}
	for i, name := range dirs {
		parent := c.parentOf(i)
		fd, made, err := openDir(parent, name, create)
		c.created = c.created || made
		if err != nil {
			err = explain(parent, name, strings.Join(dirs[:i+1], "/"), err, create)
			c.close() // parent too: explain first
			return nil, err
		}
		c.fds = append(c.fds, fd)
	}
	return c, nil
}

// openDir opens the directory parent/name, creating it if asked to; made
// reports whether it did.
func openDir(parent int, name string, create bool) (fd int, made bool, err error) {
	fd, err = openat(parent, name, dirFlags, 0)
	if err != unix.ENOENT || !create {
		return fd, false, err
	}
	err = unix.Mkdirat(parent, name, 0o755)
	made = err == nil
	if err != nil && err != unix.EEXIST {
		return -1, false, err
	}
	if fd, err = openat(parent, name, dirFlags, 0); err != nil {
		return -1, made, err
	}
	if made {
		// 0755 whatever the umask, for the web server; then make the new
		// entry durable.
		if err := unix.Fchmod(fd, 0o755); err != nil {
			unix.Close(fd)
			return -1, made, err
		}
		if err := fsync(parent); err != nil {
			unix.Close(fd)
			return -1, made, err
		}
	}
	return fd, made, nil
}

// explain turns an openat error on parent/name into a useful one.
func explain(parent int, name, rel string, err error, create bool) error {
	if err == unix.ELOOP || err == unix.ENOTDIR {
		var st unix.Stat_t
		if unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			switch uint32(st.Mode) & unix.S_IFMT {
			case unix.S_IFLNK:
				return fmt.Errorf("%q is a %w", rel, errSymlink)
			case unix.S_IFDIR:
			default:
				if create {
					// Not ENOTDIR: the object is not missing, the
					// key collides with an existing one.
					return fmt.Errorf("%q is a file, so it cannot hold other objects", rel)
				}
			}
		}
	}
	return &fs.PathError{Op: "open", Path: rel, Err: err}
}

// openObject opens the regular file parent/name for reading.
func openObject(parent int, name, key string) (*os.File, error) {
	fd, err := openat(parent, name, fileFlags, 0)
	if err != nil {
		return nil, explain(parent, name, key, err, false)
	}
	// Blocking mode again before os.NewFile, so reads are plain read(2)s.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), key)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		if fi.IsDir() {
			// A "directory" of other keys is not an object.
			return nil, fmt.Errorf("%q is a directory: %w", key, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("%q is not a regular file", key)
	}
	return f, nil
}

// openat is unix.Openat retried on EINTR.
func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// fsync is unix.Fsync retried on EINTR.
func fsync(fd int) error {
	for {
		if err := unix.Fsync(fd); err != unix.EINTR {
			return err
		}
	}
}

// isNotExist reports whether err means a path is missing or runs through
// a non-directory.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
