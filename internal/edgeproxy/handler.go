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

	"github.com/incus-appliance/registry/internal/store"
)

// Cache-Control of content-addressed image files: they never change.
const cacheImmutable = "public, max-age=31536000, immutable"

// handler serves a registry: GET and HEAD of streams/v1/*.json and
// images/..., plus /healthz and /metrics.
type handler struct {
	origin        Origin
	ranger        store.RangeReader // origin's, when it has one
	cache         *catalogCache
	catalogMaxAge time.Duration
	sem           chan struct{} // caps concurrent origin reads
	semWait       time.Duration
	writeTimeout  time.Duration
	m             *metrics
	log           *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &recorder{ResponseWriter: w, rc: http.NewResponseController(w), timeout: h.writeTimeout}
	c := h.serve(rw, r)
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	h.m.requests.WithLabelValues(string(c), strconv.Itoa(rw.status)).Inc()
	h.m.bytes.WithLabelValues(string(c)).Add(float64(rw.bytes))
	if !h.log.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", r.Method), slog.String("path", clip(r.URL.Path)), slog.Int("status", rw.status),
		slog.Int64("bytes", rw.bytes), slog.Duration("duration", time.Since(start)), slog.String("class", string(c)),
		slog.String("remote", r.RemoteAddr), slog.String("proto", r.Proto), slog.String("user_agent", clip(r.UserAgent())))
}

func clip(s string) string {
	if len(s) > 256 {
		return s[:256] + "…"
	}
	return s
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) class {
	// No request here has a body. Chunked framing is refused and the
	// connection closed after the answer: next to a Content-Length it is
	// the request-smuggling pair, after which RFC 9112 §6.1 wants the
	// connection closed (net/http drops the Content-Length and keeps it).
	if len(r.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close")
		http.Error(w, "request bodies are not accepted", http.StatusBadRequest)
		return classOther
	}
	switch r.URL.Path {
	case "/healthz":
		if err := ping(r.Context(), h.origin); err != nil {
			h.log.Warn("health check failed", "err", err)
			http.Error(w, "origin unreachable", http.StatusServiceUnavailable)
		} else {
			io.WriteString(w, "ok\n")
		}
		return classOther
	case "/metrics":
		h.m.handler().ServeHTTP(w, r)
		return classOther
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return classOther
	}
	key, c, status := route(r)
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return c
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
	return c
}

func (h *handler) serveCatalog(w http.ResponseWriter, r *http.Request, key string) {
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

// acceptsGzip reports whether the client asked for gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && !strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") {
			return true
		}
	}
	return false
}

func (h *handler) serveImage(w http.ResponseWriter, r *http.Request, key string) {
	release, err := h.acquire(r.Context())
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

// acquire takes an origin slot, waiting at most semWait.
func (h *handler) acquire(ctx context.Context) (func(), error) {
	t := time.NewTimer(h.semWait)
	defer t.Stop()
	select {
	case h.sem <- struct{}{}:
		h.m.originInflight.Inc()
		return func() { <-h.sem; h.m.originInflight.Dec() }, nil
	case <-t.C:
		return nil, errors.New("no origin slot")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
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
		_ = r.rc.SetWriteDeadline(time.Now().Add(r.timeout))
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
