package edgeproxy

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/incus-appliance/registry/internal/digest"
)

// diskCache is a bounded, least-recently-used cache of image files on
// local disk, named by their sha256 (from the catalog). A file enters it
// only whole and verified: it is fetched into a temporary file, checked
// against the expected size and sha256, then renamed into place. Files
// found on disk when the cache opens (a restart) are verified again before
// their first use, so a corrupt entry is dropped and fetched again.
type diskCache struct {
	dir   string
	limit int64
	group singleflight.Group

	mu      sync.Mutex
	entries map[string]*diskEntry // by sha256
	fills   map[string]*fill      // files being fetched, by sha256
	lru     *list.List            // of *diskEntry, most recently used first
	total   int64
}

type diskEntry struct {
	sha      string
	size     int64
	verified bool
	elem     *list.Element
}

// tmpPrefix names files being fetched; they are removed on open.
const tmpPrefix = "tmp-"

// openDiskCache opens (creating) the cache folder and indexes what a
// previous run left there, oldest modification first in the LRU order.
func openDiskCache(dir string, limit int64) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache folder: %w", err)
	}
	c := &diskCache{dir: dir, limit: limit, entries: map[string]*diskEntry{}, fills: map[string]*fill{}, lru: list.New()}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cache folder: %w", err)
	}
	type found struct {
		sha  string
		size int64
		mod  int64
	}
	var fs []found
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			os.Remove(filepath.Join(dir, name)) // a fetch cut by a crash
			continue
		}
		if !digest.IsSHA256(name) || !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		fs = append(fs, found{name, fi.Size(), fi.ModTime().UnixNano()})
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].mod > fs[j].mod })
	for _, f := range fs {
		e := &diskEntry{sha: f.sha, size: f.size}
		e.elem = c.lru.PushBack(e)
		c.entries[f.sha] = e
		c.total += f.size
	}
	c.mu.Lock()
	c.evict()
	c.mu.Unlock()
	return c, nil
}

func (c *diskCache) path(sha string) string { return filepath.Join(c.dir, sha) }

// fits reports whether a file of size bytes can be cached at all.
func (c *diskCache) fits(size int64) bool { return size <= c.limit }

// errCorrupt is a fetched or cached file that does not match the catalog.
var errCorrupt = errors.New("does not match the catalog's size and sha256")

// fillTimeout bounds one fetch of a file into the cache.
const fillTimeout = 30 * time.Minute

// open returns the file with the given sha256 and size: the cached file,
// or, while it is being fetched (one fetch per file however many callers
// ask, with fetch writing the whole file to w), a follower that hands out
// its bytes once the whole file is verified. The fetch is detached from
// ctx: a client hanging up does not cut a fetch others wait for. hit
// reports whether the file was already there.
func (c *diskCache) open(ctx context.Context, f fileInfo, fetch func(ctx context.Context, w io.Writer) error) (rsc io.ReadSeekCloser, hit bool, err error) {
	for attempt := 0; attempt < 2; attempt++ {
		c.mu.Lock()
		e := c.entries[f.sha256]
		if e != nil && e.size != f.size {
			c.dropLocked(e)
			e = nil
		}
		if e != nil {
			c.lru.MoveToFront(e.elem)
			verified := e.verified // written under c.mu by verify
			c.mu.Unlock()
			if !verified {
				if _, err, _ := c.group.Do("verify "+f.sha256, func() (any, error) { return nil, c.verify(e) }); err != nil {
					continue // dropped: fetch it again
				}
			}
			file, err := os.Open(c.path(f.sha256))
			if err == nil {
				return file, true, nil
			}
			c.drop(e) // removed behind our back
			continue
		}
		fl := c.fills[f.sha256]
		if fl == nil {
			fl, err = c.startFill(ctx, f, fetch)
			if err != nil {
				c.mu.Unlock()
				return nil, false, err
			}
		}
		// Opened while c.mu keeps the temporary file where it is (the
		// rename at the end of the fill takes c.mu too).
		file, err := os.Open(fl.path)
		c.mu.Unlock()
		if err != nil {
			return nil, false, fmt.Errorf("cache: %w", err)
		}
		return &follower{ctx: ctx, fl: fl, file: file}, false, nil
	}
	return nil, false, fmt.Errorf("cache: %s vanished while in use", f.sha256)
}

// fill is a file being fetched into the cache.
type fill struct {
	f    fileInfo
	path string // the temporary file

	done chan struct{} // closed when the fetch ended: verified and in place, or failed
	err  error         // why it failed (set before done is closed)
}

// startFill creates the temporary file and starts the fetch; c.mu is held.
func (c *diskCache) startFill(ctx context.Context, f fileInfo, fetch func(context.Context, io.Writer) error) (*fill, error) {
	tmp, err := os.CreateTemp(c.dir, tmpPrefix+f.sha256[:12]+"-")
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	fl := &fill{f: f, path: tmp.Name(), done: make(chan struct{})}
	c.fills[f.sha256] = fl
	go func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fillTimeout)
		defer cancel()
		err := c.runFill(fctx, fl, tmp, fetch)
		c.mu.Lock()
		delete(c.fills, f.sha256)
		c.mu.Unlock()
		fl.err = err
		close(fl.done)
	}()
	return fl, nil
}

// runFill fetches into tmp, verifies, and renames it into place.
func (c *diskCache) runFill(ctx context.Context, fl *fill, tmp *os.File, fetch func(context.Context, io.Writer) error) error {
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()
	h := sha256.New()
	w := &fillWriter{size: fl.f.size, w: io.MultiWriter(tmp, h)}
	if err := fetch(ctx, w); err != nil {
		return err
	}
	f := fl.f
	if w.n != f.size || hex.EncodeToString(h.Sum(nil)) != f.sha256 {
		return fmt.Errorf("fetched file (%d bytes) %w (%d bytes, %s)", w.n, errCorrupt, f.size, f.sha256)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.Rename(tmp.Name(), c.path(f.sha256)); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if old := c.entries[f.sha256]; old != nil {
		c.dropLocked(old)
	}
	e := &diskEntry{sha: f.sha256, size: f.size, verified: true}
	e.elem = c.lru.PushFront(e)
	c.entries[f.sha256] = e
	c.total += f.size
	c.evict()
	return nil
}

// fillWriter writes a fetch to the temporary file and the hash. More
// bytes than the catalog says fail the fetch.
type fillWriter struct {
	size int64
	w    io.Writer
	n    int64
}

func (w *fillWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.size {
		return 0, fmt.Errorf("origin sends more than the catalog's %d bytes: %w", w.size, errCorrupt)
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
}

// follower reads a file being fetched into the cache, and hands out no
// byte before the whole file matched the catalog: its first Read waits
// for the check (calling beforeWait first, when set), then it reads the
// verified file; a failed fetch is a failed Read.
type follower struct {
	ctx        context.Context
	fl         *fill
	file       *os.File
	pos        int64
	verified   bool
	beforeWait func()
}

// waitFor waits up to d for the fetch to end, returning its error, or
// errFetching when it is still under way.
func (r *follower) waitFor(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.fl.done:
		return r.fl.err
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-t.C:
		return errFetching
	}
}

// errFetching is a fetch still under way.
var errFetching = errors.New("still being fetched")

func (r *follower) Read(p []byte) (int, error) {
	if !r.verified {
		select {
		case <-r.fl.done:
		default:
			if r.beforeWait != nil {
				r.beforeWait()
			}
			select {
			case <-r.fl.done:
			case <-r.ctx.Done():
				return 0, r.ctx.Err()
			}
		}
		if r.fl.err != nil {
			return 0, r.fl.err
		}
		r.verified = true
	}
	if r.pos >= r.fl.f.size {
		return 0, io.EOF
	}
	n, err := r.file.ReadAt(p[:min(int64(len(p)), r.fl.f.size-r.pos)], r.pos)
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *follower) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.fl.f.size
	}
	if offset < 0 {
		return 0, errors.New("negative position")
	}
	r.pos = offset
	return offset, nil
}

func (r *follower) Close() error { return r.file.Close() }

// verify hashes a file found on disk; a mismatch drops it.
func (c *diskCache) verify(e *diskEntry) error {
	c.mu.Lock()
	done := e.verified
	c.mu.Unlock()
	if done {
		return nil
	}
	file, err := os.Open(c.path(e.sha))
	if err != nil {
		c.drop(e)
		return err
	}
	defer file.Close()
	h := sha256.New()
	n, err := io.Copy(h, file)
	if err != nil || n != e.size || hex.EncodeToString(h.Sum(nil)) != e.sha {
		c.drop(e)
		return fmt.Errorf("cached %s: %w", e.sha, errCorrupt)
	}
	c.mu.Lock()
	e.verified = true
	c.mu.Unlock()
	return nil
}

// evict removes least recently used files until the cache fits its limit.
// A file being served stays readable (the open descriptor keeps it).
func (c *diskCache) evict() {
	for c.total > c.limit {
		back := c.lru.Back()
		if back == nil {
			return
		}
		e := back.Value.(*diskEntry)
		os.Remove(c.path(e.sha))
		c.dropLocked(e)
	}
}

func (c *diskCache) drop(e *diskEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[e.sha] == e {
		os.Remove(c.path(e.sha))
		c.dropLocked(e)
	}
}

func (c *diskCache) dropLocked(e *diskEntry) {
	if c.entries[e.sha] != e {
		return
	}
	delete(c.entries, e.sha)
	c.lru.Remove(e.elem)
	c.total -= e.size
}

// size is the bytes the cache holds.
func (c *diskCache) size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}
