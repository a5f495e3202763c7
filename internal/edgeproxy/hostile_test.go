package edgeproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
)

// The hostile-request proxy runs with small timeouts so that slow and idle
// clients are cut within the test's time; every wait on them has a
// generous margin on top, for a loaded machine.
const (
	hostileReadHeader = 2 * time.Second
	hostileWrite      = 2 * time.Second
	hostileIdle       = 2 * time.Second
	hostileMargin     = 10 * time.Second
	// hostileReadTimeout is the server's ReadTimeout (see New).
	hostileReadTimeout = hostileReadHeader + 10*time.Second

	// cut is the expected "status" of a connection the server closes
	// without (or in the middle of) an answer.
	cut = -1
)

// hostileEnv is the proxy under attack and what the attacks need.
type hostileEnv struct {
	p        *proxy
	addr     string
	tls      *tls.Config
	imageKey string // 64 MiB image, for range and HEAD cases
	bigKey   string // the same bytes under another key, for the non-reader
	image    string // sha256 of the image
	imgSize  int64
	catalog  []byte // streams/v1/images.json
	index    []byte // streams/v1/index.json
	closed   chan struct{}
}

// closeSignalOrigin reports when the handler lets go of bigKey: when the
// request that read it has ended, finished or cut.
type closeSignalOrigin struct {
	Origin
	key    string
	closed chan struct{}
}

type signalFile struct {
	io.ReadSeekCloser
	once   sync.Once
	closed chan struct{}
}

func (f *signalFile) Close() error {
	err := f.ReadSeekCloser.Close()
	f.once.Do(func() {
		select {
		case f.closed <- struct{}{}:
		default:
		}
	})
	return err
}

func (o *closeSignalOrigin) Get(ctx context.Context, key string) (io.ReadCloser, store.ObjectInfo, error) {
	rc, info, err := o.Origin.Get(ctx, key)
	if rsc, ok := rc.(io.ReadSeekCloser); ok && err == nil && key == o.key {
		return &signalFile{ReadSeekCloser: rsc, closed: o.closed}, info, nil
	}
	return rc, info, err
}

// rawResult is what came back for one raw request.
type rawResult struct {
	status  int // response status, or cut
	header  http.Header
	body    []byte // the first 64 KiB of the body
	n       int64  // body bytes received
	next    int    // status of the following response (or cut), when asked
	elapsed time.Duration
	err     error // why the connection ended without (a whole) answer
}

// capWriter keeps the first max bytes written to it and counts the rest.
type capWriter struct {
	buf bytes.Buffer
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if room := w.max - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (e *hostileEnv) dial(t *testing.T) *tls.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: hostileMargin}
	conn, err := tls.DialWithDialer(d, "tcp", e.addr, e.tls)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	return conn
}

// isTimeout reports whether err is our own deadline expiring: the server
// neither answered nor hung up in time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// readOne reads one response to a request of the given method.
func readOne(br *bufio.Reader, method string) (status int, h http.Header, body []byte, n int64, err error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return cut, nil, nil, 0, err
	}
	defer resp.Body.Close()
	w := &capWriter{max: 64 << 10}
	n, err = io.Copy(w, resp.Body)
	return resp.StatusCode, resp.Header, w.buf.Bytes(), n, err
}

// exchange sends req as raw bytes over a fresh TLS connection and reads
// the answer (and, with wantNext, a second one or the connection's end),
// failing the test if the server neither answers nor hangs up within
// deadline.
func (e *hostileEnv) exchange(t *testing.T, req string, wantNext bool, deadline time.Duration) rawResult {
	t.Helper()
	conn := e.dial(t)
	start := time.Now()
	conn.SetDeadline(start.Add(deadline))
	// Write concurrently: the server may answer (431) and hang up before
	// it has read everything, and what counts is its answer.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		conn.Write([]byte(req))
	}()
	defer func() { conn.Close(); <-wrote }()
	method, _, _ := strings.Cut(req, " ")
	br := bufio.NewReader(conn)
	var r rawResult
	r.status, r.header, r.body, r.n, r.err = readOne(br, method)
	if wantNext && r.status != cut && r.err == nil {
		r.next, _, _, _, r.err = readOne(br, "GET")
	}
	r.elapsed = time.Since(start)
	if isTimeout(r.err) {
		t.Errorf("no answer and no hang-up within %s (status so far %d): %v", deadline, r.status, r.err)
	}
	return r
}

// rq is a request line with a Host header and the given header lines.
func rq(method, target string, hdr ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n")
	for _, h := range hdr {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

type hostileCase struct {
	name    string
	req     string
	want    int   // status, or cut
	next    int   // when set: status of the next response on the connection, or cut
	maxBody int64 // when set: the body is at most this long
	check   func(t *testing.T, r rawResult)
}

// isPage checks an answer is the catalog page, not a listing of keys.
func isPage(t *testing.T, r rawResult) {
	if r.header.Get("Content-Type") != "text/html; charset=utf-8" || bytes.Contains(r.body, []byte("ListBucketResult")) || bytes.Contains(r.body, []byte("images/")) {
		t.Errorf("not the catalog page: %s %.200q", r.header.Get("Content-Type"), r.body)
	}
}

func hostileCases(e *hostileEnv) []hostileCase {
	const (
		idx = "/streams/v1/index.json"
		cat = "/streams/v1/images.json"
	)
	img := "/" + e.imageKey
	catSize := int64(len(e.catalog))
	allow := func(t *testing.T, r rawResult) {
		if got := r.header.Get("Allow"); got != "GET, HEAD" {
			t.Errorf("Allow: %q", got)
		}
	}
	isIndex := func(t *testing.T, r rawResult) {
		if !bytes.Equal(r.body, e.index) {
			t.Errorf("body is not the index: %.80q", r.body)
		}
	}
	noLeak := func(t *testing.T, r rawResult) {
		if bytes.Contains(r.body, []byte("reflect-me")) || bytes.Contains(r.body, []byte("passwd")) {
			t.Errorf("request echoed: %.200q", r.body)
		}
	}
	manyRanges := func(n, step int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf("%d-%d", i*step, i*step)
		}
		return "Range: bytes=" + strings.Join(parts, ",")
	}
	many := func(n int, format string) []string {
		h := make([]string, n)
		for i := range h {
			h[i] = fmt.Sprintf(format, i)
		}
		return h
	}
	return []hostileCase{
		// Traversal, plain and in every encoding: refused before any
		// origin read, never answered with another file.
		{name: "dotdot", req: rq("GET", "/images/../streams/v1/index.json"), want: 400},
		{name: "dotdot-etc-passwd", req: rq("GET", "/streams/v1/../../etc/passwd"), want: 400, check: noLeak},
		{name: "dotdot-from-root", req: rq("GET", "/../../../../etc/passwd"), want: 400},
		{name: "dotdot-head", req: rq("HEAD", "/images/../streams/v1/index.json"), want: 400},
		{name: "pct-2e2e", req: rq("GET", "/images/%2e%2e/streams/v1/index.json"), want: 400},
		{name: "pct-2E2E", req: rq("GET", "/images/%2E%2E/streams/v1/index.json"), want: 400},
		{name: "pct-dot-2e", req: rq("GET", "/images/.%2e/streams/v1/index.json"), want: 400},
		{name: "pct-2e-dot", req: rq("GET", "/images/%2e./streams/v1/index.json"), want: 400},
		{name: "pct-double-252e", req: rq("GET", "/images/%252e%252e/streams/v1/index.json"), want: 400},
		{name: "pct-2f-slash", req: rq("GET", "/images%2f..%2fstreams/v1/index.json"), want: 400},
		{name: "pct-2F-slash", req: rq("GET", "/images%2F..%2Fstreams%2Fv1%2Findex.json"), want: 400},
		{name: "pct-2f-legit-path", req: rq("GET", "/streams%2fv1%2findex.json"), want: 400},
		{name: "pct-5c-backslash", req: rq("GET", "/images/..%5c..%5cetc%5cpasswd"), want: 400},
		{name: "pct-00-nul", req: rq("GET", "/streams/v1/index.json%00.png"), want: 400},
		{name: "pct-overlong-utf8", req: rq("GET", "/images/%c0%ae%c0%ae/streams/v1/index.json"), want: 400},
		{name: "pct-u002e", req: rq("GET", "/images/%u002e%u002e/streams/v1/index.json"), want: 400},
		{name: "pct-unreserved", req: rq("GET", "/streams/v1/%69ndex.json"), want: 400},
		{name: "raw-backslash", req: rq("GET", `/images\..\streams\v1\index.json`), want: 400},
		{name: "raw-nul", req: rq("GET", "/images/ab\x00cd/x"), want: 400},
		{name: "raw-del", req: rq("GET", "/images/ab\x7fcd/x"), want: 400},
		{name: "raw-tab", req: rq("GET", "/images/ab\tcd/x"), want: 400},
		{name: "raw-utf8", req: rq("GET", "/images/caf\xc3\xa9/x"), want: 400},
		{name: "raw-space", req: rq("GET", "/images/a b/x"), want: 400},
		{name: "fragment", req: rq("GET", "/streams/v1/index.json#x"), want: 400},
		{name: "dot-segment", req: rq("GET", "/streams/v1/./index.json"), want: 400},
		{name: "empty-segment-lead", req: rq("GET", "//streams/v1/index.json"), want: 400},
		{name: "empty-segment-mid", req: rq("GET", "/streams//v1/index.json"), want: 400},
		{name: "dotfile-lock", req: rq("GET", "/images/.registry.lock"), want: 400},
		{name: "dotfile-tmp", req: rq("GET", "/.registry-tmp/x"), want: 400},
		{name: "dotfile-in-image", req: rq("GET", "/images/abab/.hidden"), want: 400},
		{name: "trailing-slash", req: rq("GET", "/streams/v1/index.json/"), want: 400},
		{name: "images-dir", req: rq("GET", "/images/"), want: 400},
		{name: "streams-dir", req: rq("GET", "/streams/v1/"), want: 400},
		// The catalog page (issue 11), never a listing of keys.
		{name: "root", req: rq("GET", "/"), want: 200, check: isPage},
		{name: "no-leading-slash", req: rq("GET", "images/x/y"), want: 400},
		{name: "asterisk-get", req: rq("GET", "*"), want: 400},
		// Absolute form: this is no forward proxy. It is refused outright
		// rather than served as the path (see the report on RFC 9112 3.2.2).
		{name: "absolute-form-evil", req: rq("GET", "http://evil.example/images/x/y"), want: 400},
		{name: "absolute-form-self", req: rq("GET", "https://127.0.0.1/streams/v1/index.json"), want: 400},
		// Valid paths outside streams/v1/*.json and images/.
		{name: "etc-passwd", req: rq("GET", "/etc/passwd"), want: 404, check: noLeak},
		{name: "streams-v2", req: rq("GET", "/streams/v2/x.json"), want: 404},
		{name: "streams-v1-not-json", req: rq("GET", "/streams/v1/index.xml"), want: 404},
		{name: "streams-v1-deeper", req: rq("GET", "/streams/v1/a/index.json"), want: 404},
		{name: "images-one-segment", req: rq("GET", "/images/x"), want: 404},
		{name: "image-missing", req: rq("GET", "/images/abab/missing.squashfs"), want: 404},
		// Listing attempts: a query string is never forwarded.
		{name: "list-root", req: rq("GET", "/?list-type=2"), want: 200, check: isPage},
		{name: "list-prefix", req: rq("GET", "/?prefix=&delimiter=/"), want: 200, check: isPage},
		{name: "list-images", req: rq("GET", "/images/?list-type=2&prefix=images/"), want: 400},
		{name: "list-on-file", req: rq("GET", idx+"?list-type=2&prefix="), want: 200, check: isIndex},
		// Sizes.
		{name: "uri-2KiB", req: rq("GET", "/images/"+strings.Repeat("a", 2048)+"/x"), want: 414},
		{name: "uri-64KiB", req: rq("GET", "/images/"+strings.Repeat("a", 64<<10)+"/x"), want: 431},
		{name: "header-24KiB", req: rq("GET", idx, "X-Big: "+strings.Repeat("b", 24<<10)), want: 431},
		{name: "cookie-64KiB", req: rq("GET", idx, "Cookie: a="+strings.Repeat("c", 64<<10)), want: 431},
		{name: "headers-3000", req: rq("GET", idx, many(3000, "X-H%d: v")...), want: 431},
		{name: "headers-300-fit", req: rq("GET", idx, many(300, "X-H%d: v")...), want: 200, check: isIndex},
		// Methods: only GET and HEAD.
		{name: "PUT", req: rq("PUT", img, "Content-Length: 5") + "hello", want: 405, check: allow},
		{name: "POST", req: rq("POST", idx, "Content-Length: 0"), want: 405, check: allow},
		{name: "DELETE", req: rq("DELETE", img), want: 405, check: allow},
		{name: "PATCH", req: rq("PATCH", idx, "Content-Length: 0"), want: 405, check: allow},
		{name: "OPTIONS", req: rq("OPTIONS", idx), want: 405, check: allow},
		// "OPTIONS *" asks about the server, not a resource: 405 like any
		// other method (net/http would answer it itself, 200).
		{name: "OPTIONS-asterisk", req: rq("OPTIONS", "*"), want: 405, check: allow},
		{name: "TRACE", req: rq("TRACE", idx, "X-Probe: reflect-me"), want: 405, check: noLeak},
		{name: "CONNECT-authority", req: "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", want: 405},
		{name: "CONNECT-path", req: rq("CONNECT", img), want: 405},
		{name: "PROPFIND", req: rq("PROPFIND", "/", "Depth: infinity"), want: 405},
		{name: "MKCOL", req: rq("MKCOL", "/images/new"), want: 405},
		{name: "lowercase-get", req: rq("get", idx), want: 405},
		{name: "unknown-method", req: rq("FOO", idx), want: 405},
		{name: "invalid-method-token", req: rq("G(T", idx), want: 400},
		{name: "empty-method", req: rq("", idx), want: 400},
		// Protocol versions and Host.
		{name: "http10-no-host", req: "GET " + idx + " HTTP/1.0\r\n\r\n", want: 200, next: cut, check: isIndex},
		{name: "http11-no-host", req: "GET " + idx + " HTTP/1.1\r\n\r\n", want: 400},
		{name: "two-hosts", req: rq("GET", idx, "Host: evil.example"), want: 400},
		{name: "bad-host", req: "GET " + idx + " HTTP/1.1\r\nHost: a b\r\n\r\n", want: 400},
		{name: "http09", req: "GET " + idx + "\r\n\r\n", want: 400},
		{name: "http2-over-h1", req: "GET " + idx + " HTTP/2.0\r\nHost: x\r\n\r\n", want: 505},
		{name: "http-garbage-version", req: "GET " + idx + " HTTP/1.1x\r\nHost: x\r\n\r\n", want: 400},
		// Header syntax.
		{name: "header-nul", req: rq("GET", idx, "X-A: a\x00b"), want: 400},
		{name: "header-name-space", req: rq("GET", idx, "X A: b"), want: 400},
		{name: "header-no-colon", req: rq("GET", idx, "garbage"), want: 400},
		{name: "header-name-ctl", req: rq("GET", idx, "X-\x01: b"), want: 400},
		{name: "header-fold-first", req: "GET " + idx + " HTTP/1.1\r\n folded: x\r\nHost: x\r\n\r\n", want: 400},
		{name: "bare-cr", req: "GET " + idx + " HTTP/1.1\rHost: x\r\n\r\n", want: 400},
		// Ranges: bad ones are 416, a legitimate one works, and nothing
		// is amplified.
		{name: "range-abc", req: rq("GET", cat, "Range: bytes=abc"), want: 416},
		{name: "range-reversed", req: rq("GET", cat, "Range: bytes=5-1"), want: 416},
		{name: "range-suffix-0", req: rq("GET", cat, "Range: bytes=-0"), want: 416},
		{name: "range-past-end", req: rq("GET", cat, "Range: bytes=999999999-"), want: 416, check: func(t *testing.T, r rawResult) {
			if got, want := r.header.Get("Content-Range"), fmt.Sprintf("bytes */%d", catSize); got != want {
				t.Errorf("Content-Range %q, want %q", got, want)
			}
		}},
		{name: "range-overflow", req: rq("GET", cat, "Range: bytes=0-99999999999999999999999"), want: 416},
		{name: "range-negative", req: rq("GET", cat, "Range: bytes=--5"), want: 416},
		{name: "range-unknown-unit", req: rq("GET", cat, "Range: items=0-5"), want: 200, maxBody: catSize},
		{name: "range-ok", req: rq("GET", cat, "Range: bytes=0-9", "Accept-Encoding: gzip"), want: 206, check: func(t *testing.T, r rawResult) {
			if !bytes.Equal(r.body, e.catalog[:10]) || r.header.Get("Content-Encoding") != "" {
				t.Errorf("range of catalog: %q, Content-Encoding %q", r.body, r.header.Get("Content-Encoding"))
			}
		}},
		{name: "range-two-parts", req: rq("GET", cat, "Range: bytes=0-9,20-29"), want: 206, maxBody: 2 * catSize, check: func(t *testing.T, r rawResult) {
			if !strings.HasPrefix(r.header.Get("Content-Type"), "multipart/byteranges") {
				t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
			}
		}},
		{name: "range-overlap-200x", req: rq("GET", cat, "Range: bytes="+strings.Repeat("0-,", 199)+"0-"), want: 200, maxBody: catSize},
		{name: "range-overlap-200x-image", req: rq("HEAD", img, "Range: bytes="+strings.Repeat("0-,", 199)+"0-"), want: 200, check: func(t *testing.T, r rawResult) {
			if r.header.Get("Content-Length") != fmt.Sprint(e.imgSize) || strings.HasPrefix(r.header.Get("Content-Type"), "multipart") {
				t.Errorf("HEAD with 200 ranges: %v", r.header)
			}
		}},
		{name: "range-suffix-0-and-valid", req: rq("GET", cat, "Range: bytes=-0,0-4"), want: 206, check: func(t *testing.T, r rawResult) {
			if !bytes.Equal(r.body, e.catalog[:5]) || r.header.Get("Content-Range") != fmt.Sprintf("bytes 0-4/%d", catSize) {
				t.Errorf("got %q, Content-Range %q", r.body, r.header.Get("Content-Range"))
			}
		}},
		{name: "range-16-small", req: rq("GET", cat, manyRanges(16, 4)), want: 206, maxBody: catSize},
		{name: "range-17-small", req: rq("GET", cat, manyRanges(17, 4)), want: 200, maxBody: catSize},
		{name: "range-1000-small", req: rq("GET", cat, manyRanges(1000, 4)), want: 200, maxBody: catSize},
		{name: "range-1000-small-image", req: rq("HEAD", img, manyRanges(1000, 4096)), want: 200, check: func(t *testing.T, r rawResult) {
			if r.header.Get("Content-Length") != fmt.Sprint(e.imgSize) || strings.HasPrefix(r.header.Get("Content-Type"), "multipart") {
				t.Errorf("HEAD with 1000 ranges: %v", r.header)
			}
		}},
		// Request bodies and framing.
		{name: "get-with-body", req: rq("GET", idx, "Content-Length: 10") + "0123456789" + rq("GET", "/images/../x"), want: 200, next: 400},
		{name: "get-with-body-smuggled-line", req: rq("GET", idx, "Content-Length: 10") + "GET /x HTT" + rq("GET", idx), want: 200, next: 200},
		{name: "get-declares-huge-body", req: rq("GET", idx, "Content-Length: 300000"), want: 200, next: cut},
		{name: "chunked-garbage", req: rq("GET", idx, "Transfer-Encoding: chunked") + "zzzz\r\ngarbage\r\n", want: 400, next: cut},
		{name: "chunked-empty", req: rq("GET", idx, "Transfer-Encoding: chunked") + "0\r\n\r\n" + rq("GET", idx), want: 400, next: cut},
		{name: "smuggle-CL-TE", req: rq("GET", idx, "Content-Length: 6", "Transfer-Encoding: chunked") + "0\r\n\r\n" + rq("GET", "/images/../etc/passwd"), want: 400, next: cut},
		{name: "smuggle-TE-CL", req: rq("GET", idx, "Transfer-Encoding: chunked", "Content-Length: 3") + "8\r\nSMUGGLED\r\n0\r\n\r\n", want: 400, next: cut},
		{name: "TE-unknown", req: rq("GET", idx, "Transfer-Encoding: xchunked"), want: 501},
		{name: "TE-double", req: rq("GET", idx, "Transfer-Encoding: chunked", "Transfer-Encoding: identity") + "0\r\n\r\n", want: 501},
		{name: "CL-conflict", req: rq("GET", idx, "Content-Length: 1", "Content-Length: 2") + "ab", want: 400},
		{name: "CL-negative", req: rq("GET", idx, "Content-Length: -1"), want: 400},
		{name: "CL-plus", req: rq("GET", idx, "Content-Length: +1") + "a", want: 400},
		{name: "CL-overflow", req: rq("GET", idx, "Content-Length: 99999999999999999999"), want: 400},
		{name: "expect-continue-no-body", req: rq("GET", idx, "Content-Length: 10", "Expect: 100-continue"), want: 200},
		{name: "expect-unknown", req: rq("GET", idx, "Expect: teapot"), want: 417},
	}
}

func TestHostileRequests(t *testing.T) {
	dir, imageKey := testRegistry(t, 64<<20)
	bigKey := "images/" + strings.Repeat("cd", 32) + "/rootfs.squashfs"
	os.MkdirAll(filepath.Dir(filepath.Join(dir, bigKey)), 0o755)
	if err := os.Link(filepath.Join(dir, imageKey), filepath.Join(dir, bigKey)); err != nil {
		t.Fatal(err)
	}
	e := &hostileEnv{imageKey: imageKey, bigKey: bigKey, closed: make(chan struct{}, 1)}
	var err error
	if e.catalog, err = os.ReadFile(filepath.Join(dir, catalog.ImagesPath)); err != nil {
		t.Fatal(err)
	}
	if e.index, err = os.ReadFile(filepath.Join(dir, catalog.IndexPath)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, imageKey))
	if err != nil {
		t.Fatal(err)
	}
	e.image, e.imgSize, _ = digest.OfReader(f)
	f.Close()

	origin := &closeSignalOrigin{Origin: dirOrigin(t, dir), key: bigKey, closed: e.closed}
	e.p = startProxy(t, origin, func(c *Config) {
		c.ReadHeaderTimeout, c.WriteTimeout, c.IdleTimeout = hostileReadHeader, hostileWrite, hostileIdle
	})
	e.addr = e.p.srv.Addr().String()
	pem, err := os.ReadFile(e.p.Cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	e.tls = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}

	// Baseline: the proxy up and warm (catalog cached, one image served).
	if r := e.exchange(t, rq("GET", "/streams/v1/index.json", "Connection: close"), false, hostileMargin); r.status != 200 {
		t.Fatalf("warm-up: %d %v", r.status, r.err)
	}
	if r := e.exchange(t, rq("HEAD", "/"+imageKey, "Connection: close"), false, hostileMargin); r.status != 200 {
		t.Fatalf("warm-up: %d %v", r.status, r.err)
	}
	baseG, baseHeap := settledGoroutines(), heapInuse()
	t.Logf("baseline: %d goroutines, %.1f MiB heap in use", baseG, float64(baseHeap)/(1<<20))
	start := time.Now()

	// Slow clients run alongside the table, each in a subtest of its own
	// (t.Run from goroutines: not bound by -parallel).
	slow := map[string]func(*testing.T, *hostileEnv){
		"slowloris":        slowloris,
		"non-reader":       nonReader,
		"idle-connections": idleConnections,
		"truncated-body":   truncatedBody,
		"plain-http":       plainHTTP,
		"garbage-first":    garbageFirstByte,
		"stalled-tls":      stalledTLS,
		"old-tls":          oldTLS,
	}
	var wg sync.WaitGroup
	for name, fn := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(name, func(t *testing.T) { fn(t, e) })
		}()
	}
	cases := hostileCases(e)
	t.Run("table", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := e.exchange(t, c.req, c.next != 0, hostileMargin)
				t.Logf("%d (next %d), %d body bytes, %s, err %v", r.status, r.next, r.n, r.elapsed.Round(time.Millisecond), r.err)
				if r.status != c.want {
					t.Errorf("status %d, want %d (err %v, body %.120q)", r.status, c.want, r.err, r.body)
				}
				if c.next != 0 && r.next != c.next {
					t.Errorf("next response %d, want %d (err %v)", r.next, c.next, r.err)
				}
				if c.maxBody > 0 && r.n > c.maxBody {
					t.Errorf("body of %d bytes, more than %d: amplified (%s)", r.n, c.maxBody, r.header.Get("Content-Type"))
				}
				if c.want != cut && r.status >= 400 {
					for k := range r.header {
						if strings.HasPrefix(strings.ToLower(k), "x-amz") {
							t.Errorf("origin header %s leaked", k)
						}
					}
				}
				if c.check != nil && r.status == c.want {
					c.check(t, r)
				}
			})
		}
	})
	wg.Wait()
	t.Logf("%d table cases and %d slow-client scenarios in %s", len(cases), len(slow), time.Since(start).Round(time.Millisecond))

	// The process stays up and still serves correctly.
	select {
	case err := <-e.p.done:
		e.p.done <- err
		t.Fatalf("proxy stopped: %v", err)
	default:
	}
	resp, body := e.p.do(t, "GET", "/streams/v1/index.json")
	if resp.StatusCode != 200 || !bytes.Equal(body, e.index) {
		t.Errorf("after the attacks: GET index %d, %d bytes", resp.StatusCode, len(body))
	}
	resp2, err := e.p.Client.Get(e.p.URL + "/" + imageKey)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := digest.OfReader(resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != 200 || err != nil || n != e.imgSize || got != e.image {
		t.Errorf("after the attacks: GET image %d, %d bytes, %v", resp2.StatusCode, n, err)
	}
	e.p.Client.CloseIdleConnections()

	// Goroutines and memory back to baseline (connections close
	// asynchronously: poll).
	var g int
	if !eventually(15*time.Second, func() bool { g = runtime.NumGoroutine(); return g <= baseG+2 }) {
		var buf bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Errorf("goroutines: %d, baseline %d\n%s", g, baseG, buf.String())
	}
	var heap uint64
	if !eventually(10*time.Second, func() bool { heap = heapInuse(); return heap <= baseHeap+8<<20 }) {
		t.Errorf("heap in use: %.1f MiB, baseline %.1f MiB", float64(heap)/(1<<20), float64(baseHeap)/(1<<20))
	}
	t.Logf("after: %d goroutines, %.1f MiB heap in use; total %s", g, float64(heap)/(1<<20), time.Since(start).Round(time.Millisecond))
}

// eventually polls ok until it holds or within has passed.
func eventually(within time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if ok() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settledGoroutines is the goroutine count once it stops moving.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC() // the second one also empties sync.Pools
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// waitClosed reads from conn until the server hangs up (returning the
// bytes read, the first of them, and when) or the deadline passes
// (failing the test).
func waitClosed(t *testing.T, conn net.Conn, deadline time.Time) (n int64, head []byte, at time.Time) {
	t.Helper()
	conn.SetReadDeadline(deadline)
	w := &capWriter{max: 512}
	n, err := io.Copy(w, conn)
	if isTimeout(err) {
		t.Errorf("connection still open at the deadline (%d bytes read)", n)
	}
	return n, w.buf.Bytes(), time.Now()
}

// slowloris dribbles a request's header one byte every half second: the
// server must hang up ReadHeaderTimeout after the request began, however
// steadily bytes arrive.
func slowloris(t *testing.T, e *hostileEnv) {
	conn := e.dial(t)
	defer conn.Close()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		req := rq("GET", "/streams/v1/index.json", strings.Repeat("X-Slow: loris", 10))
		for i := 0; i < len(req); i++ {
			if _, err := conn.Write([]byte{req[i]}); err != nil {
				return
			}
			select {
			case <-done:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	defer close(done)
	n, head, at := waitClosed(t, conn, start.Add(hostileReadHeader+hostileMargin))
	took := at.Sub(start)
	t.Logf("cut after %s, answer %q", took.Round(time.Millisecond), head)
	if took < hostileReadHeader-time.Second {
		t.Errorf("cut after %s, before ReadHeaderTimeout %s", took, hostileReadHeader)
	}
	// net/http hangs up with a bare 400 (a header cut by the timeout is a
	// malformed request to it); silence or a 408 would do as well.
	if n != 0 && !bytes.HasPrefix(head, []byte("HTTP/1.1 400 ")) && !bytes.HasPrefix(head, []byte("HTTP/1.1 408 ")) {
		t.Errorf("slowloris got %d bytes of answer: %q", n, head)
	}
}

// nonReader asks for a 64 MiB image and reads nothing: once the socket
// buffers are full, the server must give up WriteTimeout later, release
// the file and hang up.
func nonReader(t *testing.T, e *hostileEnv) {
	conn := e.dial(t)
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte(rq("GET", "/"+e.bigKey))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.closed:
	case <-time.After(hostileWrite + hostileMargin + 10*time.Second):
		t.Fatal("the server still holds the image of a client that reads nothing")
	}
	took := time.Since(start)
	if took < hostileWrite-100*time.Millisecond {
		t.Errorf("request released after %s, before WriteTimeout %s", took, hostileWrite)
	}
	// What the buffers held can still be read; then the connection ends
	// (an error, as the response is cut short) without the whole image.
	n, _, _ := waitClosed(t, conn, time.Now().Add(hostileMargin))
	t.Logf("released after %s; %d of %d bytes had been buffered", took.Round(time.Millisecond), n, e.imgSize)
	if n >= e.imgSize {
		t.Errorf("the whole image (%d bytes) arrived: not cut", n)
	}
}

// idleConnections opens 200 connections that stay silent (after the TLS
// handshake, after one request, or before any handshake): each must be
// closed after the matching timeout, while the server keeps answering.
func idleConnections(t *testing.T, e *hostileEnv) {
	const silentTLS, afterRequest, noHandshake = 100, 60, 40
	type result struct {
		kind string
		took time.Duration
		err  error
	}
	results := make(chan result, silentTLS+afterRequest+noHandshake)
	var opened, closed sync.WaitGroup
	sem := make(chan struct{}, 16) // dials at a time
	open := func(kind string, limit time.Duration) {
		opened.Add(1)
		closed.Add(1)
		go func() {
			defer closed.Done()
			sem <- struct{}{}
			var conn net.Conn
			var err error
			d := &net.Dialer{Timeout: hostileMargin}
			switch kind {
			case "no-handshake":
				conn, err = d.Dial("tcp", e.addr)
			default:
				conn, err = tls.DialWithDialer(d, "tcp", e.addr, e.tls)
			}
			if err == nil && kind == "after-request" {
				conn.SetDeadline(time.Now().Add(hostileMargin))
				_, err = conn.Write([]byte(rq("GET", "/streams/v1/index.json")))
				if err == nil {
					br := bufio.NewReader(conn)
					var status int
					status, _, _, _, err = readOne(br, "GET")
					if err == nil && (status != 200 || br.Buffered() != 0) {
						err = fmt.Errorf("status %d", status)
					}
				}
			}
			<-sem
			opened.Done()
			if err != nil {
				results <- result{kind, 0, fmt.Errorf("open: %w", err)}
				return
			}
			defer conn.Close()
			start := time.Now()
			conn.SetReadDeadline(start.Add(limit + hostileMargin))
			_, err = io.Copy(io.Discard, conn)
			if isTimeout(err) {
				err = fmt.Errorf("still open after %s", time.Since(start).Round(time.Millisecond))
			} else {
				err = nil
			}
			results <- result{kind, time.Since(start), err}
		}()
	}
	start := time.Now()
	for i := range silentTLS + afterRequest + noHandshake {
		switch {
		case i < silentTLS:
			open("silent-tls", hostileReadHeader)
		case i < silentTLS+afterRequest:
			open("after-request", hostileIdle)
		default:
			open("no-handshake", hostileReadHeader)
		}
	}
	opened.Wait()
	t.Logf("opened %d connections in %s", silentTLS+afterRequest+noHandshake, time.Since(start).Round(time.Millisecond))
	// Meanwhile, a normal request is answered.
	r := e.exchange(t, rq("GET", "/streams/v1/index.json", "Connection: close"), false, hostileMargin)
	if r.status != 200 || !bytes.Equal(r.body, e.index) {
		t.Errorf("normal request among idle connections: %d, %v", r.status, r.err)
	}
	closed.Wait()
	close(results)
	longest := map[string]time.Duration{}
	for res := range results {
		if res.err != nil {
			t.Errorf("%s connection: %v", res.kind, res.err)
		}
		longest[res.kind] = max(longest[res.kind], res.took)
	}
	t.Logf("normal request among them: %s; longest time to be cut: %v", r.elapsed.Round(time.Millisecond), longest)
}

// truncatedBody declares a 10-byte body and sends 5: the wait for the rest
// is bounded by the server's ReadTimeout, then the connection ends.
func truncatedBody(t *testing.T, e *hostileEnv) {
	r := e.exchange(t, rq("GET", "/streams/v1/index.json", "Content-Length: 10")+"01234", true, hostileReadTimeout+hostileMargin)
	t.Logf("answered %d after %s, then next %d", r.status, r.elapsed.Round(time.Millisecond), r.next)
	if r.status != cut && r.next != cut {
		t.Errorf("connection kept open after a truncated body: next %d", r.next)
	}
}

// dialRaw opens a plain TCP connection to the proxy, closed with the test.
func (e *hostileEnv) dialRaw(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", e.addr, hostileMargin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// sendRaw writes payload on a plain TCP connection and waits for the
// server to hang up (failing the test after within); it returns the bytes
// answered and how long the server took to hang up.
func (e *hostileEnv) sendRaw(t *testing.T, payload []byte, within time.Duration) (int64, time.Duration) {
	t.Helper()
	conn := e.dialRaw(t)
	start := time.Now()
	conn.Write(payload)
	n, _, at := waitClosed(t, conn, start.Add(within))
	return n, at.Sub(start)
}

// plainHTTP speaks plain HTTP to the TLS port (as Incus does first): it
// gets a quick 400 and a closed connection.
func plainHTTP(t *testing.T, e *hostileEnv) {
	conn := e.dialRaw(t)
	start := time.Now()
	conn.SetDeadline(start.Add(hostileMargin))
	conn.Write([]byte(rq("GET", "/streams/v1/index.json")))
	status, _, body, _, err := readOne(bufio.NewReader(conn), "GET")
	took := time.Since(start)
	t.Logf("%d %q after %s", status, body, took.Round(time.Millisecond))
	if status != 400 || took > time.Second {
		t.Errorf("plain HTTP on the TLS port: %d after %s (%v)", status, took, err)
	}
	if n, _, _ := waitClosed(t, conn, time.Now().Add(hostileMargin)); n != 0 {
		t.Errorf("%d more bytes after the 400", n)
	}
}

// garbageFirstByte sends bytes that are neither TLS nor HTTP: the server
// hangs up at once, not after a timeout.
func garbageFirstByte(t *testing.T, e *hostileEnv) {
	n, took := e.sendRaw(t, []byte("\x00\xffGARBAGE\r\n\r\n"), hostileMargin)
	t.Logf("cut after %s, %d bytes answered", took.Round(time.Millisecond), n)
	if took >= hostileReadHeader {
		t.Errorf("garbage cut after %s: only by the timeout", took)
	}
}

// stalledTLS starts a TLS record and stops: the handshake is cut after the
// server's handshake timeout (its smallest of ReadHeaderTimeout...).
func stalledTLS(t *testing.T, e *hostileEnv) {
	_, took := e.sendRaw(t, []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}, hostileReadHeader+hostileMargin)
	t.Logf("cut after %s", took.Round(time.Millisecond))
	if took < hostileReadHeader-time.Second {
		t.Errorf("cut after %s, before the handshake timeout", took)
	}
}

// oldTLS offers only TLS 1.1: the handshake fails.
func oldTLS(t *testing.T, e *hostileEnv) {
	c := e.tls.Clone()
	c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: hostileMargin}, "tcp", e.addr, c)
	if err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
	t.Logf("refused: %v", err)
}

// fault is how the hostile origin lies about one file.
type fault int

const (
	faultNone    fault = iota
	faultCorrupt       // the first byte flipped
	faultShort         // the last byte missing (a consistent, shorter file)
	faultLong          // one byte more than the catalog says
	faultStall         // half the file, then nothing until the proxy hangs up
	faultCut           // half the file, then the connection drops
)

// hostileOrigin is an HTTP origin in front of a registry folder that lies
// about chosen files — it corrupts, shortens, lengthens or stalls them —
// and can hold a file's last byte back until the test lets it go. It
// counts the GETs of every key.
type hostileOrigin struct {
	srv *httptest.Server
	dir string

	mu      sync.Mutex
	faults  map[string]fault
	held    map[string]bool
	release chan struct{} // closed: held files go on
	gets    map[string]int
}

func newHostileOrigin(t testing.TB, dir string) *hostileOrigin {
	t.Helper()
	o := &hostileOrigin{dir: dir, faults: map[string]fault{}, held: map[string]bool{}, release: make(chan struct{}), gets: map[string]int{}}
	o.srv = httptest.NewServer(o)
	t.Cleanup(func() { o.letGo(); o.srv.Close() })
	return o
}

// origin is the proxy's view of it (as --origin URL).
func (o *hostileOrigin) origin(t testing.TB) Origin {
	t.Helper()
	web, err := NewHTTPOrigin(o.srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return web
}

// set makes key lie with f; hold keeps its last byte back until letGo.
func (o *hostileOrigin) set(key string, f fault, hold bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.faults[key], o.held[key] = f, hold
}

// letGo sends the held bytes (once).
func (o *hostileOrigin) letGo() {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-o.release:
	default:
		close(o.release)
	}
}

// count is the number of GETs of key so far.
func (o *hostileOrigin) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.gets[key]
}

func (o *hostileOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/")
	body, err := os.ReadFile(filepath.Join(o.dir, filepath.FromSlash(key)))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	o.mu.Lock()
	f, hold, release := o.faults[key], o.held[key], o.release
	if r.Method == http.MethodGet {
		o.gets[key]++
	}
	o.mu.Unlock()
	switch f {
	case faultCorrupt:
		body = append([]byte{body[0] ^ 0xff}, body[1:]...)
	case faultShort:
		body = body[:len(body)-1]
	case faultLong:
		body = append(body, 'x')
	}
	if r.Header.Get("Range") != "" || r.Header.Get("If-None-Match") != "" {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	head := body
	switch {
	case f == faultStall || f == faultCut:
		head = body[:len(body)/2]
	case hold:
		head = body[:len(body)-1]
	}
	w.Write(head)
	w.(http.Flusher).Flush()
	if f == faultCut {
		panic(http.ErrAbortHandler)
	}
	if len(head) == len(body) {
		return
	}
	select {
	case <-r.Context().Done():
		return
	case <-release:
	}
	if f != faultStall {
		w.Write(body[len(head):])
		return
	}
	<-r.Context().Done()
}
