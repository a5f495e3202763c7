package edgeproxy

import (
	"bytes"
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
	headerWait    time.Duration // how long a request waits for a fetch's check with nothing sent
	originIdle    time.Duration // a fill whose origin sends nothing this long fails
	minRate       float64       // bytes/s a download must average after rateGrace
	rateGrace     time.Duration
	maxQueue      int64 // the most a socket's send queue can hold
	remoteName    string
	publicURL     string // what the catalog page tells clients to add
	clients       *clients
	m             *metrics
	log           *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.m.inflight.Inc()
	defer h.m.inflight.Dec()
	rw := &recorder{ResponseWriter: w, rc: http.NewResponseController(w), timeout: h.writeTimeout,
		minRate: h.minRate, grace: h.rateGrace, conn: connOf(r), maxQueue: h.maxQueue}
	if r.TLS != nil {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
	}
	client := h.clients.ofRequest(r)
	c, tok := h.serve(rw, r, client)
	rw.finish()
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
	if client != hostOf(r.RemoteAddr) { // named by a trusted proxy's header
		attrs[6] = slog.String("remote", client)
		attrs = append(attrs, slog.String("via", r.RemoteAddr))
	}
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

func (h *handler) serve(w *recorder, r *http.Request, clientAddr string) (class, tokenUse) {
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
	client := clientKey(clientAddr)
	if h.rate != nil && !h.rate.allow(client, time.Now()) {
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
	if status == 0 {
		status = checkPath(raw)
	}
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
		h.serveImage(w, r, key, client)
	}
	return c, tok
}

func (h *handler) serveCatalog(w http.ResponseWriter, r *http.Request, key string) {
	if doc := unsignedPath(key); doc != catalog.IndexPath {
		// Only the catalog files index.json names exist, and their signed
		// forms: anything else is answered without an origin call.
		ix, err := h.cache.get(r.Context(), catalog.IndexPath)
		if err != nil {
			h.originError(w, key, err)
			return
		}
		if !ix.names(doc) {
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
	if key != unsignedPath(key) {
		hd.Set("Content-Type", "text/plain; charset=utf-8") // clear-signed JSON
	}
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

// originError answers an origin failure without leaking it: 404 for a
// missing object, 502 otherwise (the detail goes to the log only).
func (h *handler) originError(w http.ResponseWriter, key string, err error) {
	if errors.Is(err, errNoVerifiedCatalog) {
		// Logged once by the verified catalog, not at each request.
		w.Header().Set("Retry-After", "30")
		http.Error(w, "no verified catalog", http.StatusServiceUnavailable)
		return
	}
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
