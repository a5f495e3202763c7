// Package aptcache is a download cache for Debian package builds: a local
// HTTP proxy in front of a Debian mirror that keeps every .deb it fetches.
package aptcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Cache is a download cache shared by builds: a local HTTP proxy in
// front of the Debian mirror that keeps every .deb it fetches in a folder
// (a package file never changes: its name carries its version) and passes
// everything else (indexes, signatures) through. debootstrap and apt in the
// build chroot fetch through it, so a second build downloads only the
// indexes.
type Cache struct {
	dir      string
	upstream string // mirror base URL, e.g. http://deb.debian.org/debian
	client   *http.Client
	srv      *http.Server
	ln       net.Listener
}

// Start serves a cache of upstream (a mirror base URL such as
// http://deb.debian.org/debian) keeping packages in dir, on a loopback
// port, until Close.
func Start(dir, upstream string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("download cache: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("download cache: %w", err)
	}
	c := &Cache{dir: dir, upstream: strings.TrimSuffix(upstream, "/"), ln: ln,
		client: &http.Client{Timeout: 10 * time.Minute}}
	c.srv = &http.Server{Handler: c, ReadHeaderTimeout: 30 * time.Second}
	go c.srv.Serve(ln)
	return c, nil
}

// URL is the mirror URL to give debootstrap instead of the upstream one.
func (c *Cache) URL() string { return "http://" + c.ln.Addr().String() }

// Close stops serving.
func (c *Cache) Close() error { return c.srv.Close() }

// ServeHTTP serves one request: a .deb under /pool/ from the folder (fetched
// once), anything else passed through.
func (c *Cache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	clean := path.Clean("/" + r.URL.Path)
	if r.Method != http.MethodGet && r.Method != http.MethodHead || strings.Contains(clean, "..") {
		http.Error(w, "not allowed", http.StatusBadRequest)
		return
	}
	cacheable := strings.HasSuffix(clean, ".deb") && strings.HasPrefix(clean, "/pool/")
	local := filepath.Join(c.dir, filepath.FromSlash(clean))
	if cacheable {
		if f, err := os.Open(local); err == nil {
			defer f.Close()
			fi, _ := f.Stat()
			w.Header().Set("X-Cache", "HIT")
			http.ServeContent(w, r, "", fi.ModTime(), f)
			return
		}
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, c.upstream+clean, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for _, h := range []string{"If-Modified-Since", "If-None-Match", "Range"} {
		if v := r.Header.Get(h); v != "" && !cacheable {
			req.Header.Set(h, v)
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if !cacheable || resp.StatusCode != http.StatusOK || r.Method != http.MethodGet {
		io.Copy(w, resp.Body)
		return
	}
	// Tee the package into the cache; it appears there only complete.
	if err := c.store(local, io.TeeReader(resp.Body, w), resp.ContentLength); err != nil && !errors.Is(err, context.Canceled) {
		return
	}
}

// store writes body to local through a temp file renamed when complete
// (and of the announced length).
func (c *Cache) store(local string, body io.Reader, want int64) error {
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(local), ".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if want >= 0 && n != want {
		return fmt.Errorf("short download: %d of %d bytes", n, want)
	}
	return os.Rename(tmp.Name(), local)
}
