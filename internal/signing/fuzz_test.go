package signing_test

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/signing"
)

// fuzzKey is the gpg fixture key, the same in every fuzz worker process
// (a key generated per process would not verify the corpus of another).
var fuzzKey = sync.OnceValues(func() (*signing.Signer, *signing.Keyring) {
	sk, err := signing.ReadSecretKey(filepath.Join("testdata", "gpg-secret-passphrase.asc"))
	if err != nil {
		panic(err)
	}
	s, err := sk.Signer([]byte("correct horse"), fuzzNow)
	if err != nil {
		panic(err)
	}
	kr, err := signing.ReadKeyring(filepath.Join("testdata", "gpg-pubring.gpg"))
	if err != nil {
		panic(err)
	}
	return s, kr
})

var fuzzNow = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

// FuzzVerify: no input makes Verify panic, every error is one of the four,
// and whatever verifies is exactly one of the documents the key signed.
func FuzzVerify(f *testing.F) {
	s, kr := fuzzKey()
	signed := map[string]bool{sampleDoc: true}
	for _, doc := range roundTripDocs {
		signed[doc] = true
	}
	for doc := range signed {
		out, err := s.Sign([]byte(doc), fuzzNow)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(out)
	}
	f.Add([]byte(sampleDoc))
	// Found by the fuzzer: a dash-escaped line holding only spaces.
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\n\n-  \n"))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := kr.Verify(data, fuzzNow)
		if err != nil {
			n := 0
			for _, e := range []error{signing.ErrNotSigned, signing.ErrMalformed, signing.ErrUnknownKey, signing.ErrBadSignature} {
				if errors.Is(err, e) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("Verify error %v is %d of the four errors, want one", err, n)
			}
			return
		}
		if !signed[string(v.Body)] {
			t.Fatalf("Verify accepted a body the key never signed: %q", v.Body)
		}
	})
}

// FuzzSignVerify: every document Sign accepts comes back from Verify byte
// for byte; every other document is refused with ErrNotClearSignable.
func FuzzSignVerify(f *testing.F) {
	s, kr := fuzzKey()
	for _, doc := range roundTripDocs {
		f.Add([]byte(doc))
	}
	f.Add([]byte("a \nb"))
	f.Add([]byte("a\r\nb"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		out, err := s.Sign(doc, fuzzNow)
		if err != nil {
			if !errors.Is(err, signing.ErrNotClearSignable) || signing.CheckClearSignable(doc) == nil {
				t.Fatalf("Sign(%q) = %v", doc, err)
			}
			return
		}
		v, err := kr.Verify(out, fuzzNow)
		if err != nil {
			t.Fatalf("Verify(Sign(%q)) = %v\n%s", doc, err, out)
		}
		if string(v.Body) != string(doc) {
			t.Fatalf("Verify(Sign(%q)) body = %q", doc, v.Body)
		}
	})
}
