package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// hop is a fault-injecting HTTP hop between a publisher and MinIO. It
// forwards requests unchanged (Host included, so SigV4 signatures stay
// valid), counts them and the bytes uploaded, and lets a test hold a
// request or lose its response.
type hop struct {
	URL    string
	target *url.URL
	tr     *http.Transport

	requests atomic.Int64
	// uploaded counts request body bytes of PUT and POST requests.
	uploaded atomic.Int64

	mu sync.Mutex
	// decide, when set, is asked for every request (n counts from 1).
	decide func(n int64, r *http.Request) verdict
	log    []string
	status map[int64]int // response status by request number
}

// verdict says what the hop does with a request.
type verdict struct {
	// hold blocks the request until release is closed; forwardFirst sends
	// it to MinIO before blocking (the write lands, the reply waits).
	hold         chan struct{}
	held         chan struct{} // closed when the request is being held
	forwardFirst bool
	// dropResponse forwards the request, then closes the client's
	// connection instead of answering (a lost response).
	dropResponse bool
	// answer, when non-zero, answers with this status and an S3 error
	// body without forwarding (a store that lacks a feature).
	answer int
}

func newHop(t testing.TB, target string) *hop {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	h := &hop{target: u, tr: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}}
	srv := httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(srv.Close)
	h.URL = srv.URL
	return h
}

func (h *hop) setDecide(f func(n int64, r *http.Request) verdict) {
	h.mu.Lock()
	h.decide = f
	h.mu.Unlock()
}

// statusOf returns the status MinIO answered request n with.
func (h *hop) statusOf(n int64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status[n]
}

// requestLog returns "METHOD path?query" of every request so far.
func (h *hop) requestLog() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.log...)
}

func (h *hop) serve(w http.ResponseWriter, r *http.Request) {
	n := h.requests.Add(1)
	h.mu.Lock()
	h.log = append(h.log, r.Method+" "+r.URL.RequestURI())
	decide := h.decide
	h.mu.Unlock()
	var v verdict
	if decide != nil {
		v = decide(n, r)
	}
	if v.answer != 0 {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(v.answer)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>`)
		return
	}
	body := &countingReader{r: r.Body}
	if r.Method == http.MethodPut || r.Method == http.MethodPost {
		body.n = &h.uploaded
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, h.target.String()+r.URL.RequestURI(), body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host
	out.ContentLength = r.ContentLength
	if r.ContentLength == 0 {
		out.Body = http.NoBody
	}
	if v.hold != nil && !v.forwardFirst {
		close(v.held)
		<-v.hold
	}
	resp, err := h.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	h.mu.Lock()
	if h.status == nil {
		h.status = map[int64]int{}
	}
	h.status[n] = resp.StatusCode
	h.mu.Unlock()
	if v.hold != nil && v.forwardFirst {
		io.Copy(io.Discard, resp.Body)
		close(v.held)
		<-v.hold
		hijackClose(w)
		return
	}
	if v.dropResponse {
		io.Copy(io.Discard, resp.Body)
		hijackClose(w)
		return
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// hijackClose drops the client's connection without an answer.
func hijackClose(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
		}
	}
}

type countingReader struct {
	r io.ReadCloser
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n != nil {
		c.n.Add(int64(n))
	}
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// isCatalogWrite reports whether r writes images.json.
func isCatalogWrite(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/streams/v1/images.json")
}

// killDuringRequest runs publish args through the hop h (environment
// viaHop) and SIGKILLs it while the hop holds its n-th request — after
// the store applied it when forwardFirst. It returns that request, and
// false when the publish needed fewer than n requests and ran to its end
// (a failure of that run fails the test).
func killDuringRequest(t *testing.T, h *hop, n int64, forwardFirst bool, viaHop, args []string) (what string, killed bool) {
	t.Helper()
	h.requests.Store(0)
	hold, held := make(chan struct{}), make(chan struct{})
	h.setDecide(func(i int64, r *http.Request) verdict {
		if i != n {
			return verdict{}
		}
		what = r.Method + " " + r.URL.Path
		return verdict{hold: hold, held: held, forwardFirst: forwardFirst}
	})
	cmd := exec.Command(publishBin, args...)
	cmd.Env = append(cmd.Environ(), viaHop...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-held:
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		close(hold)
		return what, true
	case err := <-exited:
		close(hold)
		if err != nil {
			t.Fatalf("publish failed: %v", err)
		}
		return "", false
	}
}
