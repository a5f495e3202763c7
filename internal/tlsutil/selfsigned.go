// Package tlsutil makes the self-signed certificates a registry served
// without a public CA needs. Go's verifier (Incus) accepts a self-signed
// certificate found among its roots as it is, so the certificate need not
// be a CA, and is none: it vouches for its own names only.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"

	"github.com/incus-appliance/registry/internal/digest"
)

// SelfSigned returns a PEM certificate and PEM private key (ECDSA P-256)
// valid for hosts (DNS names or IP addresses) for the given duration. It
// is no CA (CA:FALSE, no certificate-signing key usage), and its critical
// name constraints permit its own names and addresses only (none of a
// kind it has none of): added to a trust store, its key, if stolen, can
// still not vouch for another host, even with verifiers that let a trust
// anchor sign whatever its flags say.
func SelfSigned(hosts []string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		Subject:                     pkix.Name{CommonName: hosts[0], Organization: []string{"appliance registry (self-signed)"}},
		NotBefore:                   now.Add(-time.Hour),
		NotAfter:                    now.Add(validFor),
		KeyUsage:                    x509.KeyUsageDigitalSignature,
		ExtKeyUsage:                 []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid:       true,
		IsCA:                        false,
		PermittedDNSDomainsCritical: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			bits := 8 * len(ip)
			if ip4 := ip.To4(); ip4 != nil {
				ip, bits = ip4, 32
			}
			tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
			tmpl.PermittedDNSDomains = append(tmpl.PermittedDNSDomains, h)
		}
	}
	if len(tmpl.PermittedDNSDomains) == 0 {
		tmpl.ExcludedDNSDomains = []string{""} // every name
	}
	if len(tmpl.PermittedIPRanges) == 0 {
		tmpl.ExcludedIPRanges = []*net.IPNet{{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, {IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// Fingerprint returns the SHA-256 fingerprint (lowercase hex) of the first
// certificate in certPEM.
func Fingerprint(certPEM []byte) (string, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return "", fmt.Errorf("no PEM certificate found")
	}
	return digest.Of(b.Bytes), nil
}

// ClientConfig returns a TLS client configuration trusting the system
// roots plus the PEM certificates in certFile (ignored if unreadable).
func ClientConfig(certFile string) *tls.Config {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if pem, err := os.ReadFile(certFile); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
