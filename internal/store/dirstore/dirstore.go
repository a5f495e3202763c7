// Package dirstore is the default store.Store: a registry folder on local
// disk that any static HTTP server can serve as-is, shared safely by
// several processes (several `publish` runs at once).
//
// # Layout
//
// The object under key "streams/v1/images.json" is the regular file
// <root>/streams/v1/images.json; directories are created on demand and
// removed again by Delete once empty. Internal state uses dot-names, which
// store.ValidateKey forbids as keys and List skips at any depth:
//
//	<root>/.registry-tmp/   bodies being written by Put
//	<root>/.registry.lock   the lock file that serializes commits
//
// Files are world-readable (0644) and directories 0755, so a web server
// can serve the folder directly; configure it to hide dot-names.
//
// # Writes
//
// Put streams the body into a temp file in .registry-tmp while hashing it,
// checks the size and digest, fsyncs the file and records a metadata cache
// in the extended attribute "user.appliance-registry". Only then does it
// take an exclusive flock(2) on .registry.lock (a fresh open file
// description each time, so the lock serializes goroutines as well as
// processes), check the IfAbsent/IfMatch condition against the current
// file, rename(2) the temp file over the target and fsync the parent
// directory. The rename is atomic, so readers and web servers see either
// the old or the complete new file. A crash leaves at most a temp file,
// which is never listed and which Open with Create removes after 24 hours.
//
// # ETags and the metadata cache
//
// ETags are content-based: the quoted hex SHA-256 of the file, so
// processes agree without sharing memory. Get and Stat take the digest
// (and ContentType/CacheControl) from the extended attribute when its
// recorded size and mtime match the open file, and otherwise hash the file.
// The attribute is only a cache: files placed or edited by hand are
// hashed, and on file systems without user xattrs everything still works,
// minus ContentType/CacheControl. (An in-place edit that keeps both the
// size and the mtime, to the nanosecond, is not detected.)
//
// # Symbolic links
//
// Paths are resolved one component at a time relative to the root
// directory with O_NOFOLLOW: dirstore never follows a symbolic link below
// the root and never touches anything outside it. A symlink on the way to
// a key is an error; List skips symlinks.
//
// A key cannot name both an object and a "directory" of other objects
// ("a" and "a/b"); such a Put fails. This is the one place where dirstore
// is stricter than S3.
package dirstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/incus-appliance/registry/internal/store"
)

const (
	tmpDirName   = ".registry-tmp"
	lockName     = ".registry.lock"
	staleTempAge = 24 * time.Hour
	copyBufSize  = 1 << 20
)

// Options control Open.
type Options struct {
	// Create makes Open create the root directory (but not its parent)
	// when it does not exist, and remove temp files older than 24 hours
	// left behind by crashed writers.
	Create bool
}

// Store is a store.Store on a local directory. It is safe for concurrent
// use by goroutines and by processes sharing the directory.
type Store struct {
	dir string // absolute root path, for messages

	mu   sync.RWMutex // guards root against Close
	root *os.File     // the root directory; nil once closed
	fd   int          // root's descriptor
}

var _ store.Store = (*Store)(nil)

var errClosed = errors.New("store is closed")

// Open opens the registry folder root. Without opts.Create, root must be
// an existing directory.
func Open(root string, opts Options) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("registry directory %q: %w", root, err)
	}
	if err := ensureDir(abs, opts.Create); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(abs, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening registry directory: %w", err)
	}
	s := &Store{dir: abs, root: f, fd: int(f.Fd())}
	if opts.Create {
		removeStaleTemps(s.fd, time.Now().Add(-staleTempAge))
	}
	return s, nil
}

// ensureDir checks that dir is a directory, creating it when create is set
// and its parent exists.
func ensureDir(dir string, create bool) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("registry path %q is not a directory", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("registry directory: %w", err)
	case !create:
		return fmt.Errorf("registry directory %q does not exist", dir)
	}
	parent := filepath.Dir(dir)
	if pfi, err := os.Stat(parent); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot create registry directory %q: parent directory %q does not exist", dir, parent)
	} else if err != nil {
		return fmt.Errorf("cannot create registry directory %q: %w", dir, err)
	} else if !pfi.IsDir() {
		return fmt.Errorf("cannot create registry directory %q: %q is not a directory", dir, parent)
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating registry directory: %w", err)
	}
	return ensureDir(dir, false) // lost a race to a file?
}

// Dir returns the absolute path of the registry folder.
func (s *Store) Dir() string { return s.dir }

// Close releases the root directory. Readers returned by Get stay usable.
// Closing twice is harmless.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == nil {
		return nil
	}
	err := s.root.Close()
	s.root = nil
	return err
}

// acquire returns the root descriptor, valid until release is called.
func (s *Store) acquire() (fd int, release func(), err error) {
	s.mu.RLock()
	if s.root == nil {
		s.mu.RUnlock()
		return -1, nil, errClosed
	}
	return s.fd, s.mu.RUnlock, nil
}
