package signing_test

import (
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/signing"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
)

// testNow is the time tests sign and verify at.
var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// testKey is a generated key with the helpers the tests repeat.
type testKey struct{ *signingtest.Key }

func newTestKey(t testing.TB, name string) *testKey {
	t.Helper()
	return &testKey{signingtest.NewKey(t, name)}
}

func (k *testKey) keyring(t testing.TB) *signing.Keyring {
	t.Helper()
	return signingtest.Keyring(t, k.Key)
}

func (k *testKey) sign(t testing.TB, doc string) []byte {
	t.Helper()
	out, err := k.Signer.Sign([]byte(doc), testNow)
	if err != nil {
		t.Fatalf("Sign(%q): %v", doc, err)
	}
	return out
}
