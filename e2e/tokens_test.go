package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A private registry with the stock Incus client: the remote URL carries
// the token; list and export work; without the token nothing is there; a
// token removed from the file stops working within seconds, for a new
// client and for one that already cached the catalog.
func TestIncusPrivateRegistryWithToken(t *testing.T) {
	const token = "e2e-Token-0123456789abcdef"
	folder := filepath.Join(t.TempDir(), "registry")
	meta, root := sampleImage(t, "nginx", t0, 1)
	fp := fingerprintOf(t, meta, root)
	mustPublish(t, "nginx", "--bucket", folder, "--metadata", meta, "--rootfs", root)
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(token+" e2e\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, cert := runEdgeproxy(t, nil, "--bucket", folder, "--tokens", tokens)
	if strings.Contains(url, token) {
		t.Fatal("edgeproxy printed the token")
	}

	incus := remoteClient(t, "incus", "private", url+"/"+token, cert)
	if got := incus.list(t, "private"); len(got) != 1 || strings.Join(got[fp], ",") != "nginx,nginx/amd64" {
		t.Fatalf("incus image list private: = %v", got)
	}
	incus.wantExport(t, "private:nginx", fp)

	// Without the token (or with another) there is no registry.
	for name, u := range map[string]string{"bare": url, "wrong": url + "/" + strings.ToUpper(token)} {
		other := remoteClient(t, "incus", name, u, cert)
		if o, err := other.runErr("image", "list", name+":"); err == nil {
			t.Errorf("incus image list %s: worked without the token:\n%s", name, o)
		}
	}

	// Revocation.
	if err := os.WriteFile(tokens+".new", []byte("# revoked\nanother-token-0123456789 other\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tokens+".new", tokens); err != nil {
		t.Fatal(err)
	}
	// Each attempt is a new client: one that listed while the token was
	// still valid keeps that catalog for 5 minutes.
	var listed string
	if !eventually(30*time.Second, 500*time.Millisecond, func() bool {
		fresh := remoteClient(t, "incus", "private", url+"/"+token, cert)
		o, err := fresh.runErr("image", "list", "private:")
		listed = o
		return err != nil
	}) {
		t.Fatalf("a revoked token still lists the registry 30 s later:\n%s", listed)
	}
	// The first client still has the catalog cached (5 minutes): the
	// image files themselves are refused.
	if o, err := incus.runErr("image", "export", "private:nginx", t.TempDir()); err == nil {
		t.Errorf("export with a revoked token worked:\n%s", o)
	}
}

// Tokens and a plain-HTTP listener do not go together: Incus's first,
// plain-HTTP request for an image file would hand it the token.
func TestTokensRefuseAPlainHTTPListener(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("e2e-Token-0123456789abcdef\n"), 0o600)
	out, err := edgeproxyExit("--bucket", t.TempDir(), "--tokens", tokens, "--acme-domain", "registry.test",
		"--acme-http-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--state-dir", t.TempDir(), "--metrics-listen=")
	if err == nil || !strings.Contains(out, "--tokens and --acme-http-listen do not go together") || strings.Count(out, "\n") != 1 {
		t.Errorf("edgeproxy --tokens --acme-http-listen: %v\n%s", err, out)
	}
}
