package edgeproxy

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

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
	dir    string
	limit  int64
	group  singleflight.Group
	limits fillLimits
	m      *metrics

	mu       sync.Mutex
	entries  map[string]*diskEntry // by sha256
	fills    map[string]*fill      // files being fetched, by sha256
	lru      *list.List            // of *diskEntry, most recently used first
	total    int64                 // bytes of the entries
	reserved int64                 // bytes the fills will take
	byClient map[string]int        // fills each client started, running
	bad      map[string]badFile    // files whose last fill failed, by sha256
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
func openDiskCache(dir string, limit int64, limits fillLimits, m *metrics) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache folder: %w", err)
	}
	c := &diskCache{dir: dir, limit: limit, limits: limits, m: m, entries: map[string]*diskEntry{}, fills: map[string]*fill{},
		lru: list.New(), byClient: map[string]int{}, bad: map[string]badFile{}}
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

// open returns the file with the given sha256 and size: the cached file,
// or, while it is being fetched (one fetch per file however many callers
// ask, with fetch writing the whole file to w), a follower that hands out
// its bytes once the whole file is verified. A new fetch is started for
// client within the fill limits (see startFill). The fetch is detached
// from ctx: a client hanging up does not cut a fetch others wait for. hit
// reports whether the file was already there.
func (c *diskCache) open(ctx context.Context, client string, f fileInfo, fetch func(ctx context.Context, w io.Writer) error) (rsc io.ReadSeekCloser, hit bool, err error) {
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
			fl, err = c.startFill(ctx, client, f, fetch)
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
	h := digest.New()
	n, err := io.Copy(h, file)
	if err != nil || n != e.size || digest.Hex(h) != e.sha {
		c.drop(e)
		return fmt.Errorf("cached %s: %w", e.sha, errCorrupt)
	}
	c.mu.Lock()
	e.verified = true
	c.mu.Unlock()
	return nil
}

// evict removes least recently used files until they and the fills under
// way fit the limit. A file being served stays readable (the open
// descriptor keeps it).
func (c *diskCache) evict() {
	for c.total+c.reserved > c.limit {
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

// size is the bytes the cache holds, or will once its fills are done.
func (c *diskCache) size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total + c.reserved
}
