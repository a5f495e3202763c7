package edgeproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
)

// Cache-Control of content-addressed image files: they never change.
const cacheImmutable = "public, max-age=31536000, immutable"

// handler serves a registry: GET and HEAD of streams/v1/*.json (the
// catalog files index.json names), images/..., the catalog page at / and
// /healthz; with tokens, all of it (but /healthz) under /<token>/ only.
type handler struct {
	origin        Origin
	ranger        store.RangeReader // origin's, when it has one
	cache         *catalogCache
	gate          *originGate
	health        *healthCheck
	disk          *diskCache // nil: image files stream from the origin
	tokens        *tokenSet  // nil: a public registry
	rate          *rateLimiter
	catalogMaxAge time.Duration
	writeTimeout  time.Duration
	minRate       float64 // bytes/s a download must average after rateGrace
	rateGrace     time.Duration
	remoteName    string
	m             *metrics
	log           *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.m.inflight.Inc()
	defer h.m.inflight.Dec()
	rw := &recorder{ResponseWriter: w, rc: http.NewResponseController(w), timeout: h.writeTimeout,
		start: start, minRate: h.minRate, grace: h.rateGrace}
	if r.TLS != nil {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
	}
	c, tok := h.serve(rw, r)
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	h.m.requests.WithLabelValues(string(c), strconv.Itoa(rw.status)).Inc()
	h.m.bytes.WithLabelValues(string(c)).Add(float64(rw.bytes))
	if h.tokens != nil && tok.name != "" {
		h.m.tokenRequests.WithLabelValues(tok.name).Inc()
	}
	if !h.log.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	path := r.URL.Path
	if h.tokens != nil {
		// Never the token itself: its name, or nothing for a wrong one.
		path = "/{" + tok.name + "}" + tok.rest
		if tok.name == "" {
			path = "/{no token}"
		}
		if r.URL.Path == "/healthz" {
			path = "/healthz"
		}
	}
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", clip(path)), slog.Int("status", rw.status),
		slog.Int64("bytes", rw.bytes), slog.Duration("duration", time.Since(start)), slog.String("class", string(c)),
		slog.String("remote", r.RemoteAddr), slog.String("proto", r.Proto), slog.String("user_agent", clip(r.UserAgent()))}
	if tok.name != "" {
		attrs = append(attrs, slog.String("token", tok.name))
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

func clip(s string) string {
	if len(s) > 256 {
		return s[:256] + "…"
	}
	return s
}

// tokenUse is the token a request came with: its name, the prefix that
// reaches the registry ("/<token>"), and the path after it.
type tokenUse struct {
	name, prefix, rest string
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) (class, tokenUse) {
	var tok tokenUse
	// No request here has a body. Chunked framing is refused and the
	// connection closed after the answer: next to a Content-Length it is
	// the request-smuggling pair, after which RFC 9112 §6.1 wants the
	// connection closed (net/http drops the Content-Length and keeps it).
	if len(r.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close")
		http.Error(w, "request bodies are not accepted", http.StatusBadRequest)
		return classOther, tok
	}
	if h.rate != nil && !h.rate.allow(clientAddr(r.RemoteAddr), time.Now()) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return classOther, tok
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return classOther, tok
	}
	raw, status := requestPath(r)
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return classOther, tok
	}
	if raw == "/healthz" {
		if err := h.health.check(r.Context()); err != nil {
			h.log.Warn("health check failed", "err", err)
			http.Error(w, "origin unreachable", http.StatusServiceUnavailable)
		} else {
			io.WriteString(w, "ok\n")
		}
		return classOther, tok
	}
	if h.tokens != nil {
		name, prefix, rest, ok := h.tokens.strip(raw)
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return classOther, tok
		}
		tok = tokenUse{name: name, prefix: prefix, rest: rest}
		raw = rest
	}
	if raw == "/" || raw == "" || strings.HasPrefix(raw, "/appliance/") {
		h.servePage(w, r, tok.prefix, raw)
		return classPage, tok
	}
	key, c, status := route(raw)
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return c, tok
	}
	if rg := r.Header.Get("Range"); rg != "" {
		if safe := safeRange(rg); safe != rg {
			r = r.Clone(r.Context())
			if safe == "" {
				r.Header.Del("Range")
			} else {
				r.Header.Set("Range", safe)
			}
		}
	}
	if c == classCatalog {
		h.serveCatalog(w, r, key)
	} else {
		h.serveImage(w, r, key)
	}
	return c, tok
}

func (h *handler) serveCatalog(w http.ResponseWriter, r *http.Request, key string) {
	if key != catalog.IndexPath {
		// Only the catalog files index.json names exist: anything else is
		// answered without an origin call.
		ix, err := h.cache.get(r.Context(), catalog.IndexPath)
		if err != nil {
			h.originError(w, key, err)
			return
		}
		if !ix.names(key) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
	}
	e, err := h.cache.get(r.Context(), key)
	if err != nil {
		h.originError(w, key, err)
		return
	}
	if e.missing {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(h.catalogMaxAge.Seconds())))
	hd.Set("Vary", "Accept-Encoding")
	data, etag := e.data, e.etag
	if acceptsGzip(r) && r.Header.Get("Range") == "" {
		data, etag = e.gzipped(), e.gzipETag()
		hd.Set("Content-Encoding", "gzip")
	}
	if etag != "" {
		hd.Set("ETag", etag)
	}
	if r.Header.Get("Range") != "" || r.Header.Get("If-Match") != "" || r.Header.Get("If-Unmodified-Since") != "" ||
		r.Header.Get("If-Modified-Since") != "" || r.Header.Get("If-Range") != "" {
		http.ServeContent(w, r, "", e.modTime, bytes.NewReader(data))
		return
	}
	// The common case, served from memory in one write: a plain GET or
	// HEAD, possibly with If-None-Match (clients revalidating).
	if inm := r.Header.Get("If-None-Match"); inm != "" && etag != "" && etagListHas(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if !e.modTime.IsZero() {
		hd.Set("Last-Modified", e.modTime.UTC().Format(http.TimeFormat))
	}
	hd.Set("Accept-Ranges", "bytes")
	hd.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(data)
	}
}

// etagListHas reports whether an If-None-Match list names etag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagListHas(list, etag string) bool {
	etag = strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// maxRanges caps the ranges of one request: each costs a multipart header
// and, from a remote origin, a read of its own.
const maxRanges = 16

// safeRange is the Range header to hand to http.ServeContent: none for a
// unit other than bytes (RFC 9110 §14.2: ignore it) or for more than
// maxRanges ranges (§14.2 lets a server ignore "many small ranges", a
// denial-of-service pattern); a zero-length suffix ("-0", which selects
// nothing, but which ServeContent answers with a 206 and an invalid
// Content-Range, golang/go#81262) as a start past any end, unsatisfiable.
func safeRange(rg string) string {
	set, ok := strings.CutPrefix(rg, "bytes=")
	if !ok || strings.Count(set, ",") >= maxRanges {
		return ""
	}
	specs := strings.Split(set, ",")
	for i, spec := range specs {
		if n, ok := strings.CutPrefix(strings.TrimSpace(spec), "-"); ok {
			if v, err := strconv.ParseInt(n, 10, 64); err == nil && v == 0 {
				specs[i] = "9223372036854775807-"
			}
		}
	}
	return "bytes=" + strings.Join(specs, ",")
}

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

// serveCached serves an image file from the disk cache, fetching it into
// the cache first (once, at origin speed, verified) when it is not there:
// a client, however slow, never holds an origin slot.
func (h *handler) serveCached(w http.ResponseWriter, r *http.Request, key string, f fileInfo) {
	file, hit, err := h.disk.open(r.Context(), f, func(ctx context.Context, dst io.Writer) error {
		return h.fetchTo(ctx, key, dst)
	})
	if err != nil {
		if errors.Is(err, errNoSlot) {
			http.Error(w, "busy, retry later", http.StatusServiceUnavailable)
			return
		}
		h.originError(w, key, err)
		return
	}
	defer file.Close()
	if hit {
		h.m.diskCache.WithLabelValues("hit").Inc()
	} else {
		h.m.diskCache.WithLabelValues("miss").Inc()
	}
	var mod time.Time
	if fi, err := file.Stat(); err == nil {
		mod = fi.ModTime()
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Cache-Control", cacheImmutable)
	hd.Set("ETag", `"`+f.sha256+`"`)
	http.ServeContent(w, r, "", mod, file)
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
	if _, err := io.Copy(dst, rc); err != nil {
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

// originError answers an origin failure without leaking it: 404 for a
// missing object, 502 otherwise (the detail goes to the log only).
func (h *handler) originError(w http.ResponseWriter, key string, err error) {
	if isNotFound(err) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h.log.Warn("origin error", "key", key, "err", err)
	http.Error(w, "bad gateway", http.StatusBadGateway)
}

// etagOf is the origin's ETag, or one made from size and modification time
// when the origin sends none (a plain static web server).
func etagOf(info store.ObjectInfo) string {
	if info.ETag != "" {
		return info.ETag
	}
	if info.ModTime.IsZero() {
		return ""
	}
	return fmt.Sprintf(`"%x-%x"`, info.Size, info.ModTime.UnixNano())
}

func isNotFound(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidKey)
}

// recorder counts what is written and pushes the write deadline forward
// on every write, so a client that stops reading is cut off after
// timeout while a slow but steady download is never interrupted.
type recorder struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	status  int
	bytes   int64
	// A response must average minRate bytes/s from start+grace on: a
	// write that would fall behind is cut at the moment it does.
	start   time.Time
	minRate float64
	grace   time.Duration
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.timeout > 0 {
		d := time.Now().Add(r.timeout)
		if r.minRate > 0 {
			due := r.start.Add(r.grace + time.Duration(float64(r.bytes+int64(len(p)))/r.minRate*float64(time.Second)))
			if due.Before(d) {
				d = due
			}
		}
		_ = r.rc.SetWriteDeadline(d)
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
