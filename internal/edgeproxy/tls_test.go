package edgeproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/tlsutil"
	"github.com/incus-appliance/registry/internal/tooltest"
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

// forge signs a leaf certificate for name with the key in keyFile, as
// issued by issuer.
func forge(t *testing.T, issuer *x509.Certificate, keyFile, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &leafKey.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return leaf
}

// The self-signed certificate cannot vouch for anything but itself: it is
// no CA (no certificate-signing right), its name constraints cover its own
// names only, and it is valid for a year. Added to a trust store (where the
// README used to suggest it), a stolen key still cannot impersonate another
// host: a leaf it signs for another name fails verification. Go (Incus)
// and OpenSSL (curl) accept it for its own names. A CA certificate an
// earlier version left in the state folder is replaced. (Before this test,
// the certificate was CA:TRUE with certificate-signing rights, no name
// constraints, for 10 years, and the forged leaves verified.)
func TestSelfSignedCertificateIsConstrained(t *testing.T) {
	dir, _ := testRegistry(t, 1024)
	state := t.TempDir()
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) { c.StateDir = state })
	cert := servedCert(t, p.srv.Addr().String(), "")
	if cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign != 0 {
		t.Errorf("a CA certificate (IsCA %v, key usage %b)", cert.IsCA, cert.KeyUsage)
	}
	if fmt.Sprint(cert.PermittedDNSDomains) != "[localhost]" || fmt.Sprint(cert.PermittedIPRanges) != "[127.0.0.1/32]" || !cert.PermittedDNSDomainsCritical {
		t.Errorf("name constraints: DNS %v, IP %v, critical %v", cert.PermittedDNSDomains, cert.PermittedIPRanges, cert.PermittedDNSDomainsCritical)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d > 366*24*time.Hour {
		t.Errorf("valid for %s", d)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("the certificate for %s: %v", name, err)
		}
	}
	for _, name := range []string{"bank.example", "10.0.0.1"} {
		leaf := forge(t, cert, filepath.Join(state, "selfsigned.key"), name)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err == nil {
			t.Errorf("a leaf for %s signed with its key verifies", name)
		}
	}
	curl := tooltest.Require(t, "curl")[0]
	if out, err := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", p.Cert, p.URL+"/"+catalog.IndexPath).CombinedOutput(); err != nil || string(out) != "200" {
		t.Errorf("curl trusting the certificate: %s %v", out, err)
	}
	p.stop(t)

	// An earlier version's CA certificate in the state folder is replaced.
	certPEM, keyPEM := oldCACert(t)
	os.WriteFile(filepath.Join(state, "selfsigned.crt"), certPEM, 0o644)
	os.WriteFile(filepath.Join(state, "selfsigned.key"), keyPEM, 0o600)
	p2 := startProxy(t, dirOrigin(t, dir), func(c *Config) { c.StateDir = state })
	if c := servedCert(t, p2.srv.Addr().String(), ""); c.IsCA {
		t.Error("the earlier CA certificate was kept")
	}
}

// oldCACert is a certificate as earlier versions made it: CA:TRUE,
// certificate signing, no name constraints, ten years.
func oldCACert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// writePair writes a fresh certificate/key pair atomically.
func writePair(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM, err := tlsutil.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		writeFileAtomic(t, f, b)
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

// pebbleBinary finds the Pebble ACME test server the Makefile builds
// (make pebble), skipping — or failing, with REGISTRY_E2E=require — when
// it is missing.
func pebbleBinary(t *testing.T) string {
	if p := os.Getenv("PEBBLE_BIN"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	if m, _ := filepath.Glob(filepath.Join(home, ".cache", "appliance-registry", "pebble-*", "pebble")); len(m) > 0 {
		return m[len(m)-1]
	}
	tooltest.Missing(t, errors.New("pebble not found: run `make pebble` (or set PEBBLE_BIN)"))
	return ""
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startPebble runs Pebble (challenges always valid) and returns its
// directory URL, an HTTP client trusting its API certificate, and the
// management address.
func startPebble(t *testing.T) (dirURL string, client *http.Client, mgmt string) {
	bin := pebbleBinary(t)
	dir := t.TempDir()
	certPEM, keyPEM, err := tlsutil.SelfSigned([]string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
	api, mgmt := freeAddr(t), freeAddr(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress": api, "managementListenAddress": mgmt,
		"certificate": filepath.Join(dir, "cert.pem"), "privateKey": filepath.Join(dir, "key.pem"),
		"httpPort": 5002, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(conf)
	os.WriteFile(filepath.Join(dir, "pebble.json"), b, 0o644)
	cmd := exec.Command(bin, "-config", filepath.Join(dir, "pebble.json"))
	cmd.Env = append(os.Environ(), "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	log, _ := os.Create(filepath.Join(dir, "pebble.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); log.Close() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	dirURL = "https://" + api + "/dir"
	for deadline := time.Now().Add(2 * time.Minute); ; { // generous: a busy machine
		resp, err := client.Get(dirURL)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(dir, "pebble.log"))
			t.Fatalf("pebble not ready: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return dirURL, client, mgmt
}

// The proxy gets its certificate from an ACME server (Pebble, locally) on
// the first TLS handshake for its domain, and serves the registry with it.
func TestACMECertificateFromPebble(t *testing.T) {
	dirURL, acmeClient, mgmt := startPebble(t)
	dir, _ := testRegistry(t, 1024)
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) {
		c.SelfSigned = false
		c.ACMEDomains = []string{"registry.test"}
		c.ACMEDirectory = dirURL
		c.ACMEHTTPClient = acmeClient
	})
	// Pebble's issuing root, from its management API.
	mc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := mc.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("no Pebble root: %s", rootPEM)
	}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "registry.test"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, p.srv.Addr().String())
		},
	}}
	resp, err = client.Get("https://registry.test/" + catalog.IndexPath)
	if err != nil {
		t.Fatalf("GET over the ACME certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if leaf.Subject.CommonName != "registry.test" && (len(leaf.DNSNames) == 0 || leaf.DNSNames[0] != "registry.test") {
		t.Errorf("certificate names %v", leaf.DNSNames)
	}
	// A name outside the policy gets no certificate.
	if _, err := tls.Dial("tcp", p.srv.Addr().String(), &tls.Config{ServerName: "other.test", RootCAs: roots}); err == nil {
		t.Error("handshake for a domain outside --acme-domain succeeded")
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
