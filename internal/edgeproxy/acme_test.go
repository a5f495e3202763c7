package edgeproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/tlsutil"
)

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
	msg := "pebble not found: run `make pebble` (or set PEBBLE_BIN)"
	if os.Getenv("REGISTRY_E2E") == "require" {
		t.Fatal(msg)
	}
	t.Skip(msg)
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
