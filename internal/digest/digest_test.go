package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestIsSHA256(t *testing.T) {
	if !IsSHA256(Of([]byte("x"))) {
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

func TestOfConcatenatesAndOfReaderAgrees(t *testing.T) {
	sum, n, err := OfReader(strings.NewReader("metaroot"))
	if err != nil || n != 8 {
		t.Fatalf("OfReader: %d bytes, %v", n, err)
	}
	if joined := Of([]byte("meta"), []byte("root")); joined != sum || Of([]byte("metaroot")) != sum {
		t.Fatalf("Of(meta, root) = %s, OfReader(metaroot) = %s", joined, sum)
	}
	if Of() != Of(nil) || !IsSHA256(Of()) {
		t.Fatal("the empty digest differs by how it is asked for")
	}
}
