package simplestreams_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/simplestreams"
	"github.com/incus-appliance/registry/internal/simplestreams/sstest"
)

// Only https:// URLs of a host, with an optional path, are sources.
func TestNewHTTPSRefusesOtherURLs(t *testing.T) {
	for _, raw := range []string{"http://images.example.org", "https://", "https:///streams", "images.example.org",
		"https://images.example.org/?x=1", "https://images.example.org/#top", "s3://bucket", "https://%zz"} {
		if _, err := simplestreams.NewHTTPS(raw); err == nil || !strings.Contains(err.Error(), "want https://HOST[:PORT][/PATH]") {
			t.Errorf("NewHTTPS(%q): %v, want the one-line usage error", raw, err)
		}
	}
	h, err := simplestreams.NewHTTPS("https://images.example.org:8443/mirror/")
	if err != nil || h.String() != "https://images.example.org:8443/mirror" {
		t.Errorf("NewHTTPS with a port and a path: %v, %v", h, err)
	}
}

// Open over HTTPS: a 404 is ErrNotFound, another status an error naming
// it, a path breaking the key rule is refused before any request, and
// bodies come with their length.
func TestHTTPSOpen(t *testing.T) {
	var requests atomic.Int32
	src := sstest.HTTPSSource(t, "/base", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Path {
		case "/ok.json":
			io.WriteString(w, `{"ok":true}`)
		case "/broken.json":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	rc, err := src.Open(t.Context(), "ok.json")
	if err != nil {
		t.Fatal(err)
	}
	if sz, ok := rc.(simplestreams.Sized); !ok || sz.Size() != int64(len(`{"ok":true}`)) {
		t.Errorf("the body does not carry its length: %T", rc)
	}
	rc.Close()
	if _, err := src.Open(t.Context(), "missing.json"); !errors.Is(err, simplestreams.ErrNotFound) || !strings.Contains(err.Error(), "/base/missing.json") {
		t.Errorf("Open of a missing file: %v, want ErrNotFound naming the URL", err)
	}
	if _, err := src.Open(t.Context(), "broken.json"); err == nil || errors.Is(err, simplestreams.ErrNotFound) || !strings.Contains(err.Error(), "HTTP 500") {
		t.Errorf("Open of a failing file: %v, want HTTP 500", err)
	}
	before := requests.Load()
	for _, bad := range []string{"../secret", "/etc/passwd", "a//b", ".hidden"} {
		if _, err := src.Open(t.Context(), bad); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
	if n := requests.Load() - before; n != 0 {
		t.Errorf("%d requests sent for paths breaking the key rule", n)
	}
}

// A source that stops sending fails the read once no byte came for the
// stall time: before the headers, in the middle of a body, and from a
// reader that ignores its context (abandoned, and closed).
func TestStallingSourceFailsAStalledRead(t *testing.T) {
	release := make(chan struct{})
	src := sstest.HTTPSSource(t, "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/streams/v1/index.json" {
			io.WriteString(w, `{"format":"index:1.0","index":{`)
			w.(http.Flusher).Flush()
		}
		// No more bytes, and no headers for any other file, until the
		// test ends: a handler that returned when one request was
		// cancelled would answer 200 with an empty body.
		<-release
	}))
	t.Cleanup(func() { close(release) }) // before the server's Close, which waits for handlers
	const stall = 300 * time.Millisecond

	_, err := simplestreams.ReadCatalog(t.Context(), simplestreams.Stalling(src, stall))
	if err == nil || !strings.Contains(err.Error(), "the source stalled") || !strings.Contains(err.Error(), catalog.IndexPath) {
		t.Errorf("ReadCatalog of a source stalling in the middle of index.json: %v", err)
	}
	_, err = simplestreams.Stalling(src, stall).Open(t.Context(), "streams/v1/images.json")
	if err == nil || !strings.Contains(err.Error(), "the source stalled") {
		t.Errorf("Open of a file whose headers never come: %v", err)
	}

	pr, pw := io.Pipe() // a reader that knows nothing of contexts
	t.Cleanup(func() { pw.Close() })
	go pw.Write([]byte("{"))
	stalled := simplestreams.Stalling(pipeSource{pr}, stall)
	rc, err := stalled.Open(t.Context(), catalog.IndexPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	if string(data) != "{" || err == nil || !strings.Contains(err.Error(), "the source stalled") {
		t.Errorf("read from a stalled pipe: %q, %v", data, err)
	}
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Error("a read after the stall succeeded")
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Close after the stall: %v", err)
	}
	if _, err := pw.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("the abandoned reader was not closed: write %v", err)
	}
}

type pipeSource struct{ r io.ReadCloser }

func (p pipeSource) String() string { return "pipe" }

func (p pipeSource) Open(context.Context, string) (io.ReadCloser, error) { return p.r, nil }
