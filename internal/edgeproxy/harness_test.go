package edgeproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/dirstore/dirstoretest"
)

// testRegistry writes a tiny registry folder: both catalog files and one
// image file of size bytes. It returns the folder and the image's key.
func testRegistry(t testing.TB, size int) (dir, imageKey string) {
	t.Helper()
	dir = t.TempDir()
	files := map[string][]byte{
		catalog.IndexPath:  catalog.BuildIndex([]string{"nginx:amd64"}).Marshal(),
		catalog.ImagesPath: []byte(`{"content_id":"images","datatype":"image-downloads","format":"products:1.0","products":{}}` + strings.Repeat(" ", 4096) + "\n"),
	}
	imageKey = "images/" + strings.Repeat("ab", 32) + "/rootfs.squashfs"
	img := make([]byte, size)
	for i := range img {
		img[i] = byte(i * 7)
	}
	files[imageKey] = img
	filetest.WriteTree(t, dir, files)
	return dir, imageKey
}

// writeFileAtomic replaces a file as an operator's editor would (or
// certbot its certificate): a new file renamed over the old.
func writeFileAtomic(t testing.TB, file string, content []byte) {
	t.Helper()
	tmp := file + ".new"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// jsonLog is a logger writing the proxy's JSON log lines to w.
func jsonLog(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

// dirOrigin opens a registry folder as an origin.
func dirOrigin(t testing.TB, dir string) store.Store {
	t.Helper()
	return dirstoretest.Open(t, dir)
}

// proxy is a running edgeproxy for a test.
type proxy struct {
	srv    *Server
	URL    string
	Client *http.Client
	Cert   string // PEM file to trust
	cancel context.CancelFunc
	done   chan error
}

// startProxy runs an edgeproxy with a self-signed certificate on
// 127.0.0.1:0 in front of origin; tweak edits the config first.
func startProxy(t testing.TB, origin Origin, tweak func(*Config)) *proxy {
	t.Helper()
	cfg := Config{
		Origin: origin, Listen: "127.0.0.1:0", SelfSigned: true,
		Hostnames: []string{"127.0.0.1", "localhost"}, StateDir: t.TempDir(),
		Logger:        jsonLog(io.Discard),
		MetricsListen: "127.0.0.1:0", CacheDir: t.TempDir(), CacheSize: 1 << 30,
		// Every test client comes from 127.0.0.1: the per-client limits
		// are off unless a test sets them.
		MaxConnsPerClient: -1, ClientRate: -1,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proxy{srv: srv, URL: "https://" + srv.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	if cfg.PlainHTTP {
		p.URL = "http://" + srv.Addr().String()
	}
	go func() { p.done <- srv.Run(ctx) }()
	tr := &http.Transport{ForceAttemptHTTP2: true, DisableCompression: true}
	if ss := srv.SelfSignedCert(); ss != nil {
		p.Cert = ss.CertFile
		pem, _ := os.ReadFile(ss.CertFile)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	p.Client = &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	t.Cleanup(func() { p.stop(t) })
	p.waitReady(t)
	return p
}

// waitReady returns once the proxy answers HTTP (a path it refuses
// without any origin call), however loaded the machine.
func (p *proxy) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	// Any certificate will do: this asks whether the server answers, not
	// whom it claims to be (some tests serve a certificate the client is
	// not meant to trust yet).
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	for {
		req, _ := http.NewRequest("HEAD", p.URL+"/not-a-registry-path", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			return
		}
		// A TLS alert is an answer too (an ACME proxy has no certificate
		// for 127.0.0.1 until a test asks for its domain).
		if strings.Contains(err.Error(), "remote error: tls:") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy not answering: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metrics returns the proxy's /metrics page (from its metrics listener).
func (p *proxy) metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + p.srv.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (p *proxy) stop(t testing.TB) {
	if p.cancel == nil {
		return
	}
	// Clients done with the proxy hang up first, as real ones do: an idle
	// HTTP/2 connection accepted just as shutdown starts can otherwise
	// keep Shutdown waiting for its whole timeout (seen once under load).
	p.Client.CloseIdleConnections()
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil && err != http.ErrServerClosed {
			t.Errorf("proxy Run: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Error("proxy did not stop")
	}
	p.Client.CloseIdleConnections()
}

// get performs a request with optional headers (name, value, ...).
func (p *proxy) do(t testing.TB, method, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, p.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
