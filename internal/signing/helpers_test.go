package signing_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/signing"
)

// testNow is the time tests sign and verify at.
var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// testKey is a generated key: its signer, its armoured secret, and its
// public key (armoured and binary).
type testKey struct {
	signer     *signing.Signer
	secret     []byte
	fpr        signing.Fingerprint
	pubArmored []byte
	pubBinary  []byte
}

func newTestKey(t testing.TB, name string) *testKey {
	t.Helper()
	secret, fpr, err := signing.Generate(name, "", nil, testNow.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := signing.ParseSecretKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	k := &testKey{secret: secret, fpr: fpr}
	var a, b bytes.Buffer
	if err := sk.ExportPublic(&a, true); err != nil {
		t.Fatal(err)
	}
	if err := sk.ExportPublic(&b, false); err != nil {
		t.Fatal(err)
	}
	k.pubArmored, k.pubBinary = a.Bytes(), b.Bytes()
	if k.signer, err = sk.Signer(nil, testNow); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *testKey) keyring(t testing.TB) *signing.Keyring {
	t.Helper()
	kr, err := signing.ParseKeyring(k.pubArmored)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func (k *testKey) sign(t testing.TB, doc string) []byte {
	t.Helper()
	out, err := k.signer.Sign([]byte(doc), testNow)
	if err != nil {
		t.Fatalf("Sign(%q): %v", doc, err)
	}
	return out
}
