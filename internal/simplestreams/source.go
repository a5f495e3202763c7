// Package simplestreams reads a SimpleStreams image server as a client
// does: streams/v1/index.json, then the product files it names, then the
// files their items name, from an https:// URL, or from any store (a
// directory, s3://) through the Source interface. Every read is bounded in
// time by a stall deadline, every path is checked with the registry's key
// rule, and nothing is held in memory but the JSON files.
package simplestreams

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/key"
)

// DefaultStall is how long a read may make no progress before it fails.
const DefaultStall = 60 * time.Second

// MaxRedirects is how many HTTP redirects one read follows (each must
// stay on https).
const MaxRedirects = 5

// ErrNotFound is returned by Open for a file the source does not have.
var ErrNotFound = errors.New("not found")

// Source is a SimpleStreams server's files, by path relative to its root.
type Source interface {
	// Open streams the file at path (a checked key).
	Open(ctx context.Context, path string) (io.ReadCloser, error)
	// String names the source for messages.
	String() string
}

// HTTPS reads a server over HTTPS. The system roots apply, and
// SSL_CERT_FILE / SSL_CERT_DIR override them (Go reads both on Linux).
// Redirects are followed only to https URLs, at most MaxRedirects.
type HTTPS struct {
	Base   *url.URL
	Client *http.Client
}

// NewHTTPS returns a source for an https:// URL (a path prefix is kept).
func NewHTTPS(raw string) (*HTTPS, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("source %q: want https://HOST[:PORT][/PATH]", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.ResponseHeaderTimeout = DefaultStall
	tr.DisableCompression = true // byte-exact files; sha256 is over what the catalog lists
	return &HTTPS{Base: u, Client: &http.Client{Transport: tr, CheckRedirect: checkRedirect}}, nil
}

// checkRedirect refuses a redirect that leaves https (an https source
// answering "302 Location: http://…" would hand the catalog, or a file,
// to anyone on the path) and a chain of more than MaxRedirects.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to %s refused: it leaves https", req.URL.Redacted())
	}
	if len(via) > MaxRedirects {
		return fmt.Errorf("more than %d redirects", MaxRedirects)
	}
	return nil
}

// String is the base URL (a password in it masked): the source's name in
// messages and in the products a mirror of it writes.
func (h *HTTPS) String() string { return h.Base.Redacted() }

// Open GETs path below the base URL.
func (h *HTTPS) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	if err := key.Check(path); err != nil {
		return nil, err
	}
	u := *h.Base
	u.Path = u.Path + "/" + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), unwrapURLError(err))
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %w (HTTP 404)", u.Redacted(), ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: HTTP %d", u.Redacted(), resp.StatusCode)
	}
	return sizedReader{resp.Body, resp.ContentLength}, nil
}

// unwrapURLError drops the url.Error around a client error, whose URL
// repeats the one the caller names (or, redirected, is in the cause).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// sizedReader is a ReadCloser with its length (Sized).
type sizedReader struct {
	io.ReadCloser
	size int64
}

func (s sizedReader) Size() int64 { return s.size }

// NewSized gives rc a known length (-1: unknown).
func NewSized(rc io.ReadCloser, size int64) io.ReadCloser { return sizedReader{rc, size} }

// Stalling wraps a source so that every read fails when no byte arrives
// for stall: a source that hangs ends in an error, not a hung mirror.
func Stalling(s Source, stall time.Duration) Source {
	if stall <= 0 {
		stall = DefaultStall
	}
	return &stallSource{Source: s, stall: stall}
}

type stallSource struct {
	Source
	stall time.Duration
}

func (s *stallSource) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	errStall := fmt.Errorf("%s: %s: no data for %s (the source stalled)", s.Source, path, s.stall)
	t := time.AfterFunc(s.stall, func() { cancel(errStall) })
	rc, err := s.Source.Open(ctx, path)
	if err != nil {
		t.Stop()
		cancel(nil)
		if context.Cause(ctx) == errStall {
			return nil, errStall
		}
		return nil, err
	}
	size := int64(-1)
	if sz, ok := rc.(Sized); ok {
		size = sz.Size()
	}
	return sizedReader{&stallReader{rc: rc, t: t, stall: s.stall, ctx: ctx, cancel: cancel}, size}, nil
}

// stallReader fails a read that gets no byte for stall, even when the
// underlying reader ignores its context: the read runs aside, and is
// abandoned (its reader closed) when the deadline passes.
type stallReader struct {
	rc     io.ReadCloser
	t      *time.Timer
	stall  time.Duration
	ctx    context.Context
	cancel context.CancelCauseFunc
	buf    []byte
	dead   error
}

type readResult struct {
	n   int
	err error
}

func (r *stallReader) Read(b []byte) (int, error) {
	if r.dead != nil {
		return 0, r.dead
	}
	if len(r.buf) < len(b) {
		r.buf = make([]byte, len(b))
	}
	buf := r.buf[:len(b)]
	ch := make(chan readResult, 1)
	go func() {
		n, err := r.rc.Read(buf)
		ch <- readResult{n, err}
	}()
	select {
	case res := <-ch:
		copy(b, buf[:res.n])
		if res.n > 0 {
			r.t.Reset(r.stall)
		}
		return res.n, res.err
	case <-r.ctx.Done():
		r.buf = nil // the abandoned read may still write into it
		r.dead = context.Cause(r.ctx)
		_ = r.rc.Close()
		return 0, r.dead
	}
}

func (r *stallReader) Close() error {
	r.t.Stop()
	r.cancel(nil)
	if r.dead != nil {
		return nil
	}
	return r.rc.Close()
}
