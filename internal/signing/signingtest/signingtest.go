// Package signingtest makes signing keys for tests and runs the reference
// verifiers on what they sign: gpgv, and the reference SimpleStreams
// client (sstream-query, sstream-mirror) vendored in
// third_party/python-simplestreams and run with Debian's python3.
package signingtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/signing"
	"github.com/incus-appliance/registry/internal/tooltest"
)

// KeyTime is when test keys are made: before any clock a test sets.
var KeyTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Key is a generated signing key without a passphrase.
type Key struct {
	Signer      *signing.Signer
	Fingerprint signing.Fingerprint
	// Secret is the armoured secret key (what --signing-key reads).
	Secret []byte
	// PublicArmored and PublicBinary are its public key in both forms
	// (gpgv reads the binary one).
	PublicArmored, PublicBinary []byte
}

// NewKey generates a key for name.
func NewKey(t testing.TB, name string) *Key {
	t.Helper()
	secret, fpr, err := signing.Generate(name, "", nil, KeyTime)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := signing.ParseSecretKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	k := &Key{Secret: secret, Fingerprint: fpr}
	var a, b bytes.Buffer
	if err := sk.ExportPublic(&a, true); err != nil {
		t.Fatal(err)
	}
	if err := sk.ExportPublic(&b, false); err != nil {
		t.Fatal(err)
	}
	k.PublicArmored, k.PublicBinary = a.Bytes(), b.Bytes()
	if k.Signer, err = sk.Signer(nil, KeyTime); err != nil {
		t.Fatal(err)
	}
	return k
}

// Keyring is a keyring of keys' public keys.
func Keyring(t testing.TB, keys ...*Key) *signing.Keyring {
	t.Helper()
	var all []byte
	for _, k := range keys {
		all = append(all, k.PublicArmored...)
	}
	kr, err := signing.ParseKeyring(all)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// WriteKeyring writes keys' public keys, binary, to a new file and returns
// its absolute path: the form gpgv reads as --keyring (it looks a name
// without a slash up in its home folder).
func WriteKeyring(t testing.TB, keys ...*Key) string {
	t.Helper()
	var all []byte
	for _, k := range keys {
		all = append(all, k.PublicBinary...)
	}
	path := filepath.Join(t.TempDir(), "keyring.gpg")
	if err := os.WriteFile(path, all, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteSecret writes k's secret key to a new file (mode 0600) and returns
// its path.
func WriteSecret(t testing.TB, k *Key) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signing-key.asc")
	if err := os.WriteFile(path, k.Secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Reference runs gpgv and the reference SimpleStreams client, isolated
// from the user's GnuPG home and never writing bytecode into the
// repository.
type Reference struct {
	gpgv, python, client, gnupgHome string
}

// NewReference finds the reference tools; without gpgv or python3 the
// test is skipped (failed under REGISTRY_E2E=require: tooltest).
func NewReference(t testing.TB) *Reference {
	t.Helper()
	return &Reference{
		gpgv:      tooltest.Require(t, "gpgv")[0],
		python:    python(t),
		client:    simplestreamsClient(t),
		gnupgHome: t.TempDir(),
	}
}

// GPGV checks a clear-signed file against a keyring file (WriteKeyring).
func (r *Reference) GPGV(keyring, file string) (string, error) {
	return r.run(r.gpgv, "--keyring", keyring, file)
}

// SStream runs a tool of the reference client (sstream-query,
// sstream-mirror) with args.
func (r *Reference) SStream(tool string, args ...string) (string, error) {
	return r.run(r.python, append([]string{filepath.Join(r.client, "bin", tool)}, args...)...)
}

func (r *Reference) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+r.gnupgHome, "PYTHONPATH="+r.client, "PYTHONDONTWRITEBYTECODE=1", "LANG=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// python is Debian's python3 (the reference client's interpreter), or
// the first python3 on PATH.
func python(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return tooltest.Require(t, "python3")[0]
}

// simplestreamsClient finds the vendored reference client from the
// repository root (the folder holding go.mod).
func simplestreamsClient(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
	client := filepath.Join(dir, "third_party", "python-simplestreams")
	if _, err := os.Stat(filepath.Join(client, "bin", "sstream-query")); err != nil {
		t.Fatalf("the vendored reference client: %v", err)
	}
	return client
}
