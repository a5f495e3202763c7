package edgeproxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/tlsutil"
)

// servedCert returns the leaf certificate the proxy presents for sni.
func servedCert(t *testing.T, addr, sni string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: sni})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func TestSelfSignedCertificateIsKept(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	state := t.TempDir()
	o := dirOrigin(t, dir)
	first := startProxy(t, o, func(c *Config) { c.StateDir = state })
	fp := first.srv.SelfSignedCert().Fingerprint
	cert := servedCert(t, first.srv.Addr().String(), "")
	if !cert.IsCA || !cert.BasicConstraintsValid {
		t.Error("self-signed certificate is not a CA: Incus (Go) would refuse it")
	}
	first.stop(t)
	again := startProxy(t, o, func(c *Config) { c.StateDir = state })
	if got := again.srv.SelfSignedCert().Fingerprint; got != fp {
		t.Errorf("restart made a new certificate (%s, was %s): clients would have to trust it again", got, fp)
	}
	// The client trusting that one file can talk to the proxy.
	if resp, _ := again.do(t, "GET", "/"+catalog.IndexPath); resp.StatusCode != 200 {
		t.Errorf("GET through the kept certificate: %d", resp.StatusCode)
	}
	again.stop(t)
	// A new host name it does not cover makes a new one.
	wider := startProxy(t, o, func(c *Config) { c.StateDir = state; c.Hostnames = []string{"127.0.0.1", "registry.example"} })
	if wider.srv.SelfSignedCert().Fingerprint == fp {
		t.Error("certificate not renewed for a new host name")
	}
}

// writePair writes a fresh certificate/key pair atomically.
func writePair(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM, err := tlsutil.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		tmp := f + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := pem.Decode(certPEM)
	c, _ := x509.ParseCertificate(b.Bytes)
	return c
}

func TestCertificateFilesAreReloaded(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	tdir := t.TempDir()
	certFile, keyFile := filepath.Join(tdir, "tls.crt"), filepath.Join(tdir, "tls.key")
	a := writePair(t, certFile, keyFile)
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) { c.SelfSigned, c.CertFile, c.KeyFile = false, certFile, keyFile })
	if got := servedCert(t, p.srv.Addr().String(), ""); got.SerialNumber.Cmp(a.SerialNumber) != 0 {
		t.Fatal("not serving the certificate file")
	}
	time.Sleep(1100 * time.Millisecond)
	b := writePair(t, certFile, keyFile)
	deadline := time.Now().Add(5 * time.Second)
	for servedCert(t, p.srv.Addr().String(), "").SerialNumber.Cmp(b.SerialNumber) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not picked up without a restart")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A broken replacement keeps the last good certificate.
	os.WriteFile(certFile, []byte("not a certificate"), 0o600)
	time.Sleep(1100 * time.Millisecond)
	if got := servedCert(t, p.srv.Addr().String(), ""); got.SerialNumber.Cmp(b.SerialNumber) != 0 {
		t.Error("a broken certificate file replaced the working one")
	}
}

func TestTLSVersionsAndHTTP2(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	p := startProxy(t, dirOrigin(t, dir), nil)
	if _, err := tls.Dial("tcp", p.srv.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	conn, err := tls.Dial("tcp", p.srv.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.ConnectionState().NegotiatedProtocol != "h2" {
		t.Errorf("ALPN negotiated %q, want h2", conn.ConnectionState().NegotiatedProtocol)
	}
}

// slowReader reads a response body slowly.
func slowRead(r io.Reader, chunk int, pause time.Duration) (int64, error) {
	buf := make([]byte, chunk)
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		time.Sleep(pause)
	}
}

// SIGTERM (the context ending) lets in-flight downloads finish.
func TestGracefulShutdownFinishesDownloads(t *testing.T) {
	const size = 8 << 20
	dir, key := testRegistry(t, size)
	p := startProxy(t, dirOrigin(t, dir), nil)
	resp, err := p.Client.Get(p.URL + "/" + key)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan int64)
	go func() {
		n, _ := slowRead(resp.Body, 256<<10, 40*time.Millisecond)
		got <- n
	}()
	time.Sleep(300 * time.Millisecond)
	p.cancel() // shutdown begins mid-download
	if n := <-got; n != size {
		t.Errorf("download cut by shutdown after %d of %d bytes", n, size)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the download finished")
	}
	p.cancel = nil
	if _, err := http.Get("https://" + p.srv.Addr().String() + "/healthz"); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}
