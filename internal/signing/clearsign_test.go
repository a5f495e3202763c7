package signing_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/signing"
)

// roundTripDocs are documents whose exact bytes must survive Sign and
// Verify: the clear-sign framing has to keep final newlines (or their
// absence), dash-escape lines starting with '-', and keep blank lines.
var roundTripDocs = map[string]string{
	"json with final newline":    "{\n  \"format\": \"index:1.0\",\n  \"index\": {}\n}\n",
	"json without final newline": "{\n  \"format\": \"index:1.0\",\n  \"index\": {}\n}",
	"empty":                      "",
	"only a newline":             "\n",
	"two final newlines":         "{}\n\n",
	"blank lines inside":         "[\n\n1,\n\n\n2\n]\n",
	"lines starting with dash": "[\n-1,\n- 2,\n--3,\n-\n" +
		"-----BEGIN PGP SIGNATURE-----\n-----END PGP SIGNATURE-----\n-----BEGIN PGP SIGNED MESSAGE-----\n]\n",
	"dash last line without newline": "[\n-1]",
	"leading spaces kept":            "  {\n\t\"a\": \"x  y\"\n  }\n",
	"From line":                      "From here\n>From there\n",
	"unicode":                        "{\"name\": \"nginx – ünïcødé ✓\"}\n",
	"inner whitespace":               "{\"a\":\t\"b\",  \"c\": 1}",
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k := newTestKey(t, "round trip")
	kr := k.keyring(t)
	for name, doc := range roundTripDocs {
		t.Run(name, func(t *testing.T) {
			signed := k.sign(t, doc)
			if !bytes.HasPrefix(signed, []byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n")) {
				t.Fatalf("signed document starts %q", signed[:min(len(signed), 60)])
			}
			v, err := kr.Verify(signed, testNow)
			if err != nil {
				t.Fatalf("Verify: %v\n%s", err, signed)
			}
			if string(v.Body) != doc {
				t.Fatalf("Verify body = %q, signed %q", v.Body, doc)
			}
			if v.Signer != k.Fingerprint || v.SigningKey != k.Fingerprint || !v.SignedAt.Equal(testNow) {
				t.Errorf("Verify = signer %s key %s at %v, want %s at %v", v.Signer, v.SigningKey, v.SignedAt, k.Fingerprint, testNow)
			}
			// A copy that went through a CRLF conversion still verifies
			// and yields the same body.
			crlf := bytes.ReplaceAll(signed, []byte("\n"), []byte("\r\n"))
			if v, err := kr.Verify(crlf, testNow); err != nil || string(v.Body) != doc {
				t.Errorf("Verify(CRLF copy) = %q, %v; want %q", bodyOf(v), err, doc)
			}
		})
	}
}

func bodyOf(v *signing.Verified) []byte {
	if v == nil {
		return nil
	}
	return v.Body
}

// TestSignRefusesWhatClearSigningDrops: trailing whitespace and carriage
// returns are not part of a clear signature (RFC 9580, 7.1); signing such a
// document would make the .sjson hold other bytes than its .json.
func TestSignRefusesWhatClearSigningDrops(t *testing.T) {
	k := newTestKey(t, "refuse")
	for doc, line := range map[string]string{
		"{\n  \"a\": 1, \n}\n": "line 2 ends in whitespace",
		"{\n  \"a\": 1\t\n}\n": "line 2 ends in whitespace",
		"{\n}  ":               "line 2 ends in whitespace",
		" ":                    "line 1 ends in whitespace",
		"{\r\n  \"a\": 1\r\n}": "carriage return on line 1",
		"{\n\"a\r\": 1}":       "carriage return on line 2",
	} {
		_, err := k.Signer.Sign([]byte(doc), testNow)
		if !errors.Is(err, signing.ErrNotClearSignable) || !strings.Contains(err.Error(), line) {
			t.Errorf("Sign(%q) = %v, want ErrNotClearSignable (%s)", doc, err, line)
		}
	}
}
