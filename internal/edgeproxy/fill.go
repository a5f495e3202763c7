package edgeproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/incus-appliance/registry/internal/digest"
)

// fillLimits bound the fetches into the cache that clients start: a
// fetch holds an origin slot, and the file it writes counts against the
// cache size from its start.
type fillLimits struct {
	max       int // fills at once
	perClient int // fills one client address started that are still running
}

// newFillLimits allows maxFills at once, but never more than half the
// origin slots (other requests keep the rest); one client may start a
// quarter of them (at least one).
func newFillLimits(maxFills, originSlots int) fillLimits {
	n := max(1, min(maxFills, originSlots/2))
	return fillLimits{max: n, perClient: max(1, n/4)}
}

// How long a file whose fill failed is refused before it is fetched
// again: badFileFirst after one failure, doubling with each failure in a
// row up to badFileMost.
const (
	badFileFirst = 30 * time.Second
	badFileMost  = 30 * time.Minute
	// fillTimeout bounds one fetch of a file into the cache.
	fillTimeout = 30 * time.Minute
)

// badFile is a file whose last fill failed.
type badFile struct {
	until    time.Time
	failures int
}

// Why no fill was started.
var (
	errFillsBusy   = errors.New("every cache fill is in use")
	errClientShare = errors.New("this client's cache fills are all in use")
	errCacheFull   = errors.New("no room in the cache while other files are being fetched")
)

// badFileError is a file whose fill failed lately, refused until retry.
type badFileError struct {
	sha   string
	retry time.Duration
}

func (e *badFileError) Error() string {
	return fmt.Sprintf("%s failed its last fetch: not fetched again for %s", e.sha, e.retry.Round(time.Second))
}

// fill is a file being fetched into the cache.
type fill struct {
	f      fileInfo
	client string
	path   string // the temporary file

	done chan struct{} // closed when the fetch ended: verified and in place, or failed
	err  error         // why it failed (set before done is closed)
}

// startFill creates the temporary file and starts the fetch, or refuses
// to: a file that failed lately, all fills in use, client's share in use,
// or no room for the file beside the fills under way. c.mu is held.
func (c *diskCache) startFill(ctx context.Context, client string, f fileInfo, fetch func(context.Context, io.Writer) error) (*fill, error) {
	var refused error
	now := time.Now()
	switch b, bad := c.bad[f.sha256]; {
	case bad && now.Before(b.until):
		c.m.fillsRefused.WithLabelValues("bad").Inc()
		return nil, &badFileError{sha: f.sha256, retry: b.until.Sub(now)}
	case len(c.fills) >= c.limits.max:
		refused = errFillsBusy
		c.m.fillsRefused.WithLabelValues("busy").Inc()
	case c.byClient[client] >= c.limits.perClient:
		refused = errClientShare
		c.m.fillsRefused.WithLabelValues("client").Inc()
	case c.reserved+f.size > c.limit:
		refused = errCacheFull
		c.m.fillsRefused.WithLabelValues("full").Inc()
	}
	if refused != nil {
		return nil, refused
	}
	tmp, err := os.CreateTemp(c.dir, tmpPrefix+f.sha256[:12]+"-")
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	fl := &fill{f: f, client: client, path: tmp.Name(), done: make(chan struct{})}
	c.fills[f.sha256] = fl
	c.byClient[client]++
	c.reserved += f.size
	c.evict()
	c.m.fills.Inc()
	go func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fillTimeout)
		defer cancel()
		err := c.finishFill(fl, c.runFill(fctx, fl, tmp, fetch))
		c.m.fills.Dec()
		fl.err = err
		close(fl.done)
	}()
	return fl, nil
}

// runFill fetches into tmp and checks it against the catalog.
func (c *diskCache) runFill(ctx context.Context, fl *fill, tmp *os.File, fetch func(context.Context, io.Writer) error) error {
	defer tmp.Close()
	h := digest.New()
	w := &fillWriter{size: fl.f.size, w: io.MultiWriter(tmp, h)}
	if err := fetch(ctx, w); err != nil {
		return err
	}
	f := fl.f
	if w.n != f.size || digest.Hex(h) != f.sha256 {
		return fmt.Errorf("fetched file (%d bytes) %w (%d bytes, %s)", w.n, errCorrupt, f.size, f.sha256)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// finishFill puts a verified file in place, or remembers a failed one
// as bad (a fill that found no origin slot is not the file's fault), and
// frees what the fill held.
func (c *diskCache) finishFill(fl *fill, err error) error {
	defer os.Remove(fl.path) // a no-op once renamed
	c.mu.Lock()
	defer c.mu.Unlock()
	sha := fl.f.sha256
	delete(c.fills, sha)
	c.reserved -= fl.f.size
	if c.byClient[fl.client]--; c.byClient[fl.client] <= 0 {
		delete(c.byClient, fl.client)
	}
	if err == nil {
		if err = os.Rename(fl.path, c.path(sha)); err != nil {
			err = fmt.Errorf("cache: %w", err)
		}
	}
	switch {
	case err == nil:
		delete(c.bad, sha)
		if old := c.entries[sha]; old != nil {
			c.dropLocked(old)
		}
		e := &diskEntry{sha: sha, size: fl.f.size, verified: true}
		e.elem = c.lru.PushFront(e)
		c.entries[sha] = e
		c.total += fl.f.size
		c.evict()
	case !errors.Is(err, errNoSlot):
		c.m.fillFailures.Inc()
		c.rememberBad(sha, time.Now())
	}
	return err
}

// rememberBad refuses sha for a while, longer after each failure in a
// row; entries long expired are forgotten (the catalog bounds how many
// files there are).
func (c *diskCache) rememberBad(sha string, now time.Time) {
	if len(c.bad) >= 1024 {
		for k, b := range c.bad {
			if now.After(b.until.Add(badFileMost)) {
				delete(c.bad, k)
			}
		}
	}
	b := c.bad[sha]
	if now.After(b.until.Add(badFileMost)) {
		b.failures = 0
	}
	b.failures++
	b.until = now.Add(min(badFileFirst<<min(b.failures-1, 16), badFileMost))
	c.bad[sha] = b
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
	beforeWait func() error
}

// errFetching is a fetch still under way.
var errFetching = errors.New("still being fetched")

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

// wait waits for the fetch to end (calling beforeWait first if it has not
// yet) and returns its error.
func (r *follower) wait() error {
	select {
	case <-r.fl.done:
	default:
		if r.beforeWait != nil {
			r.beforeWait()
		}
		select {
		case <-r.fl.done:
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
	return r.fl.err
}

func (r *follower) Read(p []byte) (int, error) {
	if !r.verified {
		if err := r.wait(); err != nil {
			return 0, err
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
	pos, err := seekPos(r.pos, r.fl.f.size, offset, whence)
	if err == nil {
		r.pos = pos
	}
	return pos, err
}

func (r *follower) Close() error { return r.file.Close() }
