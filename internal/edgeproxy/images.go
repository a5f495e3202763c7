package edgeproxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
)

func (h *handler) serveImage(w *recorder, r *http.Request, key, client string) {
	if h.disk != nil {
		f, ok := h.catalogFile(r.Context(), key)
		if ok && h.disk.fits(f.size) {
			h.serveCached(w, r, key, client, f)
			return
		}
		if h.cache.verified != nil {
			// With a keyring a file goes out only checked against the
			// verified catalog: through the cache, never streamed.
			h.unverifiedImage(w, key, ok)
			return
		}
	}
	// Not named by the catalog (a file a client may still fetch after its
	// version left the catalog) or no disk cache: streamed from the
	// origin, holding an origin slot until done or cut.
	release, err := h.gate.acquire(r.Context())
	if err != nil {
		http.Error(w, "busy, retry later", http.StatusServiceUnavailable)
		return
	}
	defer release()
	obj, info, err := h.open(r, key)
	if err != nil {
		h.originError(w, key, err)
		return
	}
	defer obj.Close()
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Cache-Control", cacheImmutable)
	if etag := etagOf(info); etag != "" {
		hd.Set("ETag", etag)
	}
	// Never Content-Encoding: Incus hashes exactly the bytes it receives.
	http.ServeContent(w, r, "", info.ModTime, obj)
}

// unverifiedImage refuses, with a keyring, an image file the verified
// catalog does not name (404), or one larger than the whole cache (502).
func (h *handler) unverifiedImage(w http.ResponseWriter, key string, named bool) {
	if !named {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h.log.Warn("image file larger than the image cache: with a keyring it is not served (give a larger --cache-size)", "key", key)
	http.Error(w, "bad gateway", http.StatusBadGateway)
}

// serveCached serves an image file from the disk cache, answering from
// the catalog (size, sha256) what needs no byte of it: HEAD, 304, 412 and
// 416 never fetch anything. A file not there yet is fetched into it (once,
// at origin speed, verified; within the fill limits), and no byte of it
// goes to any client, ranged or not, before the whole file matched the
// catalog: a request waits for the check — up to headerWait with nothing
// sent, so that a bad fetch is a clean 502; past that the header goes out
// (clients give up on a server that sends none), the body once the check
// passed, and a bad fetch cuts the response before its first body byte. A
// client, however slow, never holds an origin slot.
func (h *handler) serveCached(w *recorder, r *http.Request, key, client string, f fileInfo) {
	img := &cachedImage{size: f.size, open: func() (io.ReadSeekCloser, error) {
		return h.openCached(r.Context(), key, client, f, w.FlushError)
	}}
	defer img.Close()
	if strings.Contains(r.Header.Get("Range"), ",") {
		// Several ranges are read from another goroutine: the file is
		// opened, and checked, before anything is answered.
		if err := img.ready(); err != nil {
			h.fetchError(w, key, err)
			return
		}
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Cache-Control", cacheImmutable)
	hd.Set("ETag", `"`+f.sha256+`"`)
	http.ServeContent(w, r, "", time.Time{}, img)
	if err := img.failure(); err != nil && r.Context().Err() == nil && w.discardHeader() {
		h.fetchError(w, key, err)
	}
}

// openCached opens a file the catalog names: from the cache, or through a
// fill it joins or starts, having waited up to headerWait for the fill's
// check (flush sends the header when the wait goes on).
func (h *handler) openCached(ctx context.Context, key, client string, f fileInfo, flush func() error) (io.ReadSeekCloser, error) {
	file, hit, err := h.disk.open(ctx, client, f, func(ctx context.Context, dst io.Writer) error {
		return h.fetchTo(ctx, key, dst)
	})
	if err != nil {
		return nil, err
	}
	if hit {
		h.m.diskCache.WithLabelValues("hit").Inc()
		return file, nil
	}
	h.m.diskCache.WithLabelValues("miss").Inc()
	fl := file.(*follower)
	if err := fl.waitFor(h.headerWait); err != nil && !errors.Is(err, errFetching) {
		fl.Close()
		return nil, err
	}
	fl.beforeWait = flush
	return fl, nil
}

// cachedImage is an image file the catalog names as http.ServeContent
// sees it: its size is the catalog's, and only its first Read opens it.
type cachedImage struct {
	size int64
	open func() (io.ReadSeekCloser, error)
	pos  int64
	file io.ReadSeekCloser

	mu  sync.Mutex // ServeContent reads several ranges from a goroutine
	err error      // why the file could not be read
}

// ready opens the file and, when it is being fetched, waits for the check
// (with nothing sent).
func (c *cachedImage) ready() error {
	if err := c.openFile(); err != nil {
		return err
	}
	if fl, ok := c.file.(*follower); ok {
		fl.beforeWait = nil
		if err := fl.wait(); err != nil {
			return c.fail(err)
		}
	}
	return nil
}

func (c *cachedImage) openFile() error {
	if c.file != nil {
		return nil
	}
	if err := c.failure(); err != nil {
		return err
	}
	file, err := c.open()
	if err != nil {
		return c.fail(err)
	}
	c.file = file
	if _, err := file.Seek(c.pos, io.SeekStart); err != nil {
		return c.fail(err)
	}
	return nil
}

func (c *cachedImage) Read(p []byte) (int, error) {
	if err := c.openFile(); err != nil {
		return 0, err
	}
	n, err := c.file.Read(p)
	c.pos += int64(n)
	if err != nil && err != io.EOF {
		c.fail(err)
	}
	return n, err
}

func (c *cachedImage) Seek(offset int64, whence int) (int64, error) {
	pos, err := seekPos(c.pos, c.size, offset, whence)
	if err != nil {
		return 0, err
	}
	c.pos = pos
	if c.file != nil {
		return c.file.Seek(pos, io.SeekStart)
	}
	return pos, nil
}

func (c *cachedImage) fail(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	return err
}

// failure is why the file could not be read, if it could not.
func (c *cachedImage) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *cachedImage) Close() error {
	if c.file != nil {
		return c.file.Close()
	}
	return nil
}

// fetchError answers a failed fetch: 503 when no origin slot or cache
// fill freed up (try again soon), 502 with the back-off left for a file
// that failed its last fetch, else as originError.
func (h *handler) fetchError(w http.ResponseWriter, key string, err error) {
	var bad *badFileError
	switch {
	case errors.Is(err, errNoSlot), errors.Is(err, errFillsBusy), errors.Is(err, errClientShare), errors.Is(err, errCacheFull):
		w.Header().Set("Retry-After", "5")
		http.Error(w, "busy, retry later", http.StatusServiceUnavailable)
	case errors.As(err, &bad):
		w.Header().Set("Retry-After", strconv.Itoa(int(bad.retry.Seconds())+1))
		http.Error(w, "bad gateway", http.StatusBadGateway)
	default:
		h.originError(w, key, err)
	}
}

// fetchTo copies an image file from the origin, holding an origin slot.
// An origin that sends nothing for originIdle fails the fetch.
func (h *handler) fetchTo(ctx context.Context, key string, dst io.Writer) error {
	release, err := h.gate.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stalled := time.AfterFunc(h.originIdle, func() { cancel(errOriginStalled) })
	defer stalled.Stop()
	start := time.Now()
	rc, _, err := h.origin.Get(ctx, key)
	h.m.originLatency.WithLabelValues("image").Observe(time.Since(start).Seconds())
	if err != nil {
		return cmp.Or(context.Cause(ctx), err)
	}
	defer rc.Close()
	// One fill at a time per file: a large buffer costs little and makes
	// fewer writes and hash calls.
	buf := make([]byte, 1<<20)
	src := &idleReader{r: rc, t: stalled, d: h.originIdle}
	if _, err := io.CopyBuffer(dst, src, buf); err != nil {
		return fmt.Errorf("fetch %s: %w", key, cmp.Or(context.Cause(ctx), err))
	}
	return nil
}

// errOriginStalled is an origin that stopped sending.
var errOriginStalled = errors.New("the origin stopped sending")

// idleReader pushes a timer back each time its reader returns bytes.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.d)
	}
	return n, err
}

// catalogFile looks an image file up in the catalog files index.json
// names (all cached in memory): the one place an image file's expected
// size and sha256 come from.
func (h *handler) catalogFile(ctx context.Context, key string) (fileInfo, bool) {
	ix, err := h.cache.get(ctx, catalog.IndexPath)
	if err != nil {
		return fileInfo{}, false
	}
	ix.parse()
	for p := range ix.named {
		e, err := h.cache.get(ctx, p)
		if err != nil {
			continue
		}
		if f, ok := e.file(key); ok {
			return f, true
		}
	}
	return fileInfo{}, false
}

// open returns a seekable view of an image file. A local file is used as
// is; a remote object is read lazily: a plain GET streams the one body
// opened here, while HEAD, Range and conditional requests start from a
// Stat so that no body is fetched for nothing.
func (h *handler) open(r *http.Request, key string) (io.ReadSeekCloser, store.ObjectInfo, error) {
	ctx := r.Context()
	start := time.Now()
	defer func() { h.m.originLatency.WithLabelValues("image").Observe(time.Since(start).Seconds()) }()
	light := r.Method == http.MethodHead || r.Header.Get("Range") != "" ||
		r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != ""
	if h.ranger != nil && light {
		info, err := h.origin.Stat(ctx, key)
		if err != nil {
			return nil, info, err
		}
		return &lazyObject{ctx: ctx, ranger: h.ranger, key: key, etag: info.ETag, size: info.Size}, info, nil
	}
	rc, info, err := h.origin.Get(ctx, key)
	if err != nil {
		return nil, info, err
	}
	if rsc, ok := rc.(io.ReadSeekCloser); ok {
		return rsc, info, nil
	}
	return &lazyObject{ctx: ctx, ranger: h.ranger, key: key, etag: info.ETag, size: info.Size, body: rc}, info, nil
}
