package edgeproxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/incus-appliance/registry/internal/tlsutil"
)

// fileCert serves the certificate in a cert/key file pair and reloads it
// when either file changes (checked at most once a second), so renewing a
// certificate needs no restart. A broken new pair keeps the old one.
type fileCert struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // mtimes and sizes of the pair
	checked time.Time
	lastErr error
}

func newFileCert(certFile, keyFile string) (*fileCert, error) {
	fc := &fileCert{certFile: certFile, keyFile: keyFile}
	if err := fc.reload(); err != nil {
		return nil, err
	}
	return fc, nil
}

func (fc *fileCert) fileStamp() (string, error) {
	var s string
	for _, f := range []string{fc.certFile, fc.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return s, nil
}

// reload loads the pair if it changed. Callers hold mu (or own fc).
func (fc *fileCert) reload() error {
	stamp, err := fc.fileStamp()
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	if stamp == fc.stamp && fc.cert != nil {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(fc.certFile, fc.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s / %s: %w", fc.certFile, fc.keyFile, err)
	}
	fc.cert, fc.stamp = &cert, stamp
	return nil
}

func (fc *fileCert) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if time.Since(fc.checked) >= time.Second {
		fc.checked = time.Now()
		fc.lastErr = fc.reload() // on error keep serving the old pair
	}
	return fc.cert, nil
}

// SelfSigned is a certificate the proxy made for itself and keeps.
type SelfSigned struct {
	CertFile, KeyFile string
	// Fingerprint is the certificate's SHA-256, lowercase hex.
	Fingerprint string
	// NotAfter is when it expires (a new one is made 30 days before).
	NotAfter time.Time
}

// selfSignedValidity is how long a self-signed certificate is made for.
const selfSignedValidity = 365 * 24 * time.Hour

// selfSigned returns the self-signed certificate kept in dir (no CA,
// constrained to its own names: see tlsutil.SelfSigned), creating it
// (valid for hosts, a year) when missing, within 30 days of its end, not
// covering every host, or a CA (as earlier versions made it).
func selfSigned(dir string, hosts []string) (*SelfSigned, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	s := &SelfSigned{CertFile: filepath.Join(dir, "selfsigned.crt"), KeyFile: filepath.Join(dir, "selfsigned.key")}
	if !covers(s.CertFile, hosts) {
		certPEM, keyPEM, err := tlsutil.SelfSigned(hosts, selfSignedValidity)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(s.KeyFile, keyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(s.CertFile, certPEM, 0o644); err != nil {
			return nil, err
		}
	}
	certPEM, err := os.ReadFile(s.CertFile)
	if err != nil {
		return nil, err
	}
	if s.Fingerprint, err = tlsutil.Fingerprint(certPEM); err != nil {
		return nil, err
	}
	if c := parseCert(certPEM); c != nil {
		s.NotAfter = c.NotAfter
	}
	return s, nil
}

func parseCert(data []byte) *x509.Certificate {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil
	}
	c, _ := x509.ParseCertificate(b.Bytes)
	return c
}

// covers reports whether the certificate in file is valid for 30 more
// days, names every host, and is no CA.
func covers(file string, hosts []string) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	c := parseCert(data)
	if c == nil || time.Until(c.NotAfter) < 30*24*time.Hour || c.IsCA || c.KeyUsage&x509.KeyUsageCertSign != 0 {
		return false
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(c.IPAddresses, func(x net.IP) bool { return x.Equal(ip) }) {
				return false
			}
		} else if !slices.Contains(c.DNSNames, h) {
			return false
		}
	}
	return true
}

// acmeManager gets certificates for domains with ACME (Let's Encrypt by
// default, any RFC 8555 directory otherwise), kept in cacheDir.
func acmeManager(domains []string, cacheDir, directory, email string, client *http.Client) (*autocert.Manager, error) {
	if len(domains) == 0 {
		return nil, errors.New("ACME needs at least one domain")
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(cacheDir),
		HostPolicy: autocert.HostWhitelist(domains...),
		Email:      email,
	}
	if directory != "" || client != nil {
		m.Client = &acme.Client{DirectoryURL: directory, HTTPClient: client}
	}
	return m, nil
}
