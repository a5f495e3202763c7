package edgeproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
)

func (h *handler) serveImage(w http.ResponseWriter, r *http.Request, key string) {
	if h.disk != nil {
		if f, ok := h.catalogFile(r.Context(), key); ok && h.disk.fits(f.size) {
			h.serveCached(w, r, key, f)
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

// serveCached serves an image file from the disk cache. A file not there
// yet is fetched into it (once, at origin speed, verified), and no byte
// of it goes to any client, ranged or not, before the whole file matched
// the catalog: a request waits for the check — up to headerWait with
// nothing sent, so that a bad fetch is a clean 502; past that the header
// goes out (clients give up on a server that sends none), the body once
// the check passed, and a bad fetch cuts the response before its first
// byte. A client, however slow, never holds an origin slot.
func (h *handler) serveCached(w http.ResponseWriter, r *http.Request, key string, f fileInfo) {
	file, hit, err := h.disk.open(r.Context(), f, func(ctx context.Context, dst io.Writer) error {
		return h.fetchTo(ctx, key, dst)
	})
	if err != nil {
		h.fetchError(w, key, err)
		return
	}
	defer file.Close()
	var mod time.Time
	switch file := file.(type) {
	case *os.File:
		if fi, err := file.Stat(); err == nil {
			mod = fi.ModTime()
		}
	case *follower:
		if err := file.waitFor(h.headerWait); err != nil && !errors.Is(err, errFetching) {
			h.fetchError(w, key, err)
			return
		}
		rc := http.NewResponseController(w)
		file.beforeWait = func() { rc.Flush() }
	}
	if hit {
		h.m.diskCache.WithLabelValues("hit").Inc()
	} else {
		h.m.diskCache.WithLabelValues("miss").Inc()
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Cache-Control", cacheImmutable)
	hd.Set("ETag", `"`+f.sha256+`"`)
	http.ServeContent(w, r, "", mod, file)
}

// fetchError answers a failed fetch: 503 when no origin slot freed up in
// time, else as originError.
func (h *handler) fetchError(w http.ResponseWriter, key string, err error) {
	if errors.Is(err, errNoSlot) {
		http.Error(w, "busy, retry later", http.StatusServiceUnavailable)
		return
	}
	h.originError(w, key, err)
}

// fetchTo copies an image file from the origin, holding an origin slot.
func (h *handler) fetchTo(ctx context.Context, key string, dst io.Writer) error {
	release, err := h.gate.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	start := time.Now()
	rc, _, err := h.origin.Get(ctx, key)
	h.m.originLatency.WithLabelValues("image").Observe(time.Since(start).Seconds())
	if err != nil {
		return err
	}
	defer rc.Close()
	// One fill at a time per file: a large buffer costs little and makes
	// fewer writes, hash calls and wake-ups of the readers following it.
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(dst, struct{ io.Reader }{rc}, buf); err != nil {
		return fmt.Errorf("fetch %s: %w", key, err)
	}
	return nil
}

// catalogFile looks an image file up in the catalog files index.json
// names (all cached in memory).
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
