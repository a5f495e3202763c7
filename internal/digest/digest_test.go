package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestIsSHA256(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	if !IsSHA256(hex.EncodeToString(sum[:])) {
		t.Fatal("a real digest refused")
	}
	for _, s := range []string{"", strings.Repeat("a", 63), strings.Repeat("A", 64), strings.Repeat("g", 64), strings.Repeat("a", 65)} {
		if IsSHA256(s) {
			t.Errorf("IsSHA256(%q) = true", s)
		}
	}
}

func TestFingerprintIsSHA256OfMetadataThenRoot(t *testing.T) {
	f := NewFingerprint()
	f.Write([]byte("meta"))
	f.Write([]byte("root"))
	want := sha256.Sum256([]byte("metaroot"))
	if got := f.Hex(); got != hex.EncodeToString(want[:]) {
		t.Fatalf("Sum = %s, want %x", got, want)
	}
}

func TestNewAndOfAgree(t *testing.T) {
	h := New()
	h.Write([]byte("x"))
	if got, want := Hex(h), Of([]byte("x")); got != want || !IsSHA256(got) {
		t.Fatalf("Hex(New()+x) = %s, Of(x) = %s", got, want)
	}
}

func TestOfAndOfReaderAreSHA256(t *testing.T) {
	// The FIPS 180-2 test vectors for "abc" and for no input.
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	const empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got := Of([]byte("abc")); got != abc {
		t.Errorf("Of(abc) = %s, want %s", got, abc)
	}
	if got := Of([]byte("a"), nil, []byte("bc")); got != abc {
		t.Errorf("Of(a, nil, bc) = %s, want the digest of abc", got)
	}
	if Of() != empty || Of(nil) != empty {
		t.Errorf("Of() = %s, Of(nil) = %s, want %s", Of(), Of(nil), empty)
	}
	sum, n, err := OfReader(strings.NewReader("abc"))
	if err != nil || n != 3 || sum != abc {
		t.Errorf("OfReader(abc) = %s, %d bytes, %v; want %s, 3", sum, n, err, abc)
	}
}
