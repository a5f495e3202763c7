package signing_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/signing"
)

const sampleDoc = "{\n  \"content_id\": \"images\",\n  \"products\": {\n    \"nginx:amd64\": {\n      \"aliases\": \"nginx\"\n    }\n  }\n}\n"

func TestVerifyErrors(t *testing.T) {
	k := newTestKey(t, "trusted")
	stranger := newTestKey(t, "stranger")
	kr := k.keyring(t)
	signed := string(k.sign(t, sampleDoc))
	sigBlock := signed[strings.Index(signed, "-----BEGIN PGP SIGNATURE-----"):]
	replace := func(old, new string) string {
		if !strings.Contains(signed, old) {
			t.Fatalf("%q not in the signed document", old)
		}
		return strings.Replace(signed, old, new, 1)
	}
	cases := []struct {
		name string
		doc  string
		want error
	}{
		{"plain json", sampleDoc, signing.ErrNotSigned},
		{"nothing", "", signing.ErrNotSigned},
		{"alias edited", replace(`"aliases": "nginx"`, `"aliases": "evil"`), signing.ErrBadSignature},
		{"line added", replace("  }\n}\n", "  },\n  \"x\": 1\n}\n"), signing.ErrBadSignature},
		{"final newline dropped", replace("}\n\n-----BEGIN PGP SIGNATURE", "}\n-----BEGIN PGP SIGNATURE"), signing.ErrBadSignature},
		{"final newline added", replace("}\n\n-----BEGIN PGP SIGNATURE", "}\n\n\n-----BEGIN PGP SIGNATURE"), signing.ErrBadSignature},
		{"line dash-escaped into another", replace("  }\n}", "- -  }\n}"), signing.ErrBadSignature},
		{"signed by an unknown key", string(stranger.sign(t, sampleDoc)), signing.ErrUnknownKey},
		{"text before", "hello\n" + signed, signing.ErrMalformed},
		{"text after", signed + "hello\n", signing.ErrMalformed},
		{"bad first line", strings.Replace(signed, "MESSAGE-----\n", "MESSAGE----- x\n", 1), signing.ErrMalformed},
		{"no Hash header", replace("Hash: SHA256\n", ""), signing.ErrMalformed},
		{"Hash header names another hash", replace("Hash: SHA256\n", "Hash: SHA512\n"), signing.ErrMalformed},
		{"another header", replace("Hash: SHA256\n", "Hash: SHA256\nComment: hi\n"), signing.ErrMalformed},
		{"no blank line after the header", replace("Hash: SHA256\n\n", "Hash: SHA256\n"), signing.ErrMalformed},
		{"unescaped dash line", replace("  }\n}", "-x\n  }\n}"), signing.ErrMalformed},
		{"truncated in the body", signed[:len(signed)/4], signing.ErrMalformed},
		{"truncated in the signature", signed[:len(signed)-60], signing.ErrMalformed},
		{"no signature block", strings.TrimSuffix(signed, sigBlock), signing.ErrMalformed},
		{"signature not base64", replace(sigBlock, "-----BEGIN PGP SIGNATURE-----\n\n!!!!\n-----END PGP SIGNATURE-----\n"), signing.ErrMalformed},
		{"empty signature", replace(sigBlock, "-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"), signing.ErrMalformed},
		{"two signed messages", signed + signed, signing.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := kr.Verify([]byte(c.doc), testNow)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, %v; want %v", bodyOf(v), err, c.want)
			}
			for _, other := range []error{signing.ErrNotSigned, signing.ErrMalformed, signing.ErrUnknownKey, signing.ErrBadSignature} {
				if other != c.want && errors.Is(err, other) {
					t.Errorf("Verify error %v is also %v", err, other)
				}
			}
		})
	}
}

// TestVerifyUnknownKeyNamesIt: the error says which key signed, so an
// operator can tell a rotation not yet in the keyring from an attack.
func TestVerifyUnknownKeyNamesIt(t *testing.T) {
	k, stranger := newTestKey(t, "trusted"), newTestKey(t, "stranger")
	_, err := k.keyring(t).Verify(stranger.sign(t, sampleDoc), testNow)
	if !errors.Is(err, signing.ErrUnknownKey) || !strings.Contains(err.Error(), string(stranger.Fingerprint)) {
		t.Fatalf("Verify = %v, want ErrUnknownKey naming %s", err, stranger.Fingerprint)
	}
}

// TestVerifyTrailingWhitespaceIgnored: trailing whitespace in the clear
// text is not signed (RFC 9580, 7.1), so an added space neither breaks the
// signature nor reaches the body.
func TestVerifyTrailingWhitespaceIgnored(t *testing.T) {
	k := newTestKey(t, "ws")
	for doc, edit := range map[string][2]string{
		sampleDoc:        {`"nginx"`, "\"nginx\"  \t"},
		"[\n-1,\n-\n]\n": {"\n- -\n", "\n- -  \n"}, // a dash-escaped line
		"[\n-1,\n\n]\n":  {"\n\n]", "\n  \n]"},     // an empty line
	} {
		signed := replaceOnce(t, k.sign(t, doc), edit[0], edit[1])
		v, err := k.keyring(t).Verify(signed, testNow)
		if err != nil || string(v.Body) != doc {
			t.Errorf("Verify = %q, %v; want the signed %q", bodyOf(v), err, doc)
		}
	}
}

// TestUnverified: the text of a signed document comes back whatever its
// signature (a tampered one, a stranger's), and plain or broken documents
// are refused the way Verify refuses them; a Signer's own keyring
// verifies what it signs and nothing a stranger signs.
func TestUnverified(t *testing.T) {
	k, stranger := newTestKey(t, "writer"), newTestKey(t, "stranger")
	tampered := replaceOnce(t, k.sign(t, sampleDoc), `"nginx"`, `"evil!"`)
	for name, c := range map[string]struct {
		doc  []byte
		want string
	}{
		"own":      {k.sign(t, sampleDoc), sampleDoc},
		"stranger": {stranger.sign(t, sampleDoc), sampleDoc},
		"tampered": {tampered, strings.Replace(sampleDoc, `"nginx"`, `"evil!"`, 1)},
	} {
		if body, err := signing.Unverified(c.doc); err != nil || string(body) != c.want {
			t.Errorf("%s: Unverified = %q, %v; want %q", name, body, err, c.want)
		}
	}
	if _, err := signing.Unverified([]byte(sampleDoc)); !errors.Is(err, signing.ErrNotSigned) {
		t.Errorf("Unverified(plain) = %v, want ErrNotSigned", err)
	}
	if _, err := signing.Unverified([]byte("hello\n" + string(k.sign(t, sampleDoc)))); !errors.Is(err, signing.ErrMalformed) {
		t.Errorf("Unverified(text before) = %v, want ErrMalformed", err)
	}
	own := k.Signer.Keyring()
	if v, err := own.Verify(k.sign(t, sampleDoc), testNow); err != nil || v.Signer != k.Fingerprint {
		t.Errorf("the signer's keyring: %v, %v", v, err)
	}
	if _, err := own.Verify(stranger.sign(t, sampleDoc), testNow); !errors.Is(err, signing.ErrUnknownKey) {
		t.Errorf("the signer's keyring accepts a stranger's signature: %v", err)
	}
	if _, err := own.Verify(tampered, testNow); !errors.Is(err, signing.ErrBadSignature) {
		t.Errorf("the signer's keyring accepts a tampered document: %v", err)
	}
}

// TestVerifyClockSkew: a signature made a minute ahead of the verifier's
// clock (the publisher's clock runs ahead) verifies; one made an hour
// ahead does not.
func TestVerifyClockSkew(t *testing.T) {
	k := newTestKey(t, "skew")
	for ahead, ok := range map[time.Duration]bool{time.Minute: true, time.Hour: false} {
		signed, err := k.Signer.Sign([]byte(sampleDoc), testNow.Add(ahead))
		if err != nil {
			t.Fatal(err)
		}
		_, err = k.keyring(t).Verify(signed, testNow)
		if (err == nil) != ok {
			t.Errorf("signed %s ahead: Verify = %v, want ok=%v", ahead, err, ok)
		}
		if !ok && !errors.Is(err, signing.ErrBadSignature) {
			t.Errorf("signed %s ahead: Verify = %v, want ErrBadSignature", ahead, err)
		}
	}
}

// TestUnverifiedPrefix: the first bytes of a signed document give the
// start of its text (dash-escapes removed), whatever the cut; a prefix
// ending in the header, or not clear-signed, is refused.
func TestUnverifiedPrefix(t *testing.T) {
	k := newTestKey(t, "writer")
	doc := "{\n-1,\n  \"registry_serial\": 7\n}\n"
	signed := k.sign(t, doc)
	start := strings.Index(string(signed), "\n\n") + 2
	for cut := start; cut <= len(signed); cut++ {
		got, err := signing.UnverifiedPrefix(signed[:cut])
		if err != nil || !strings.HasPrefix(doc, string(got)) && !strings.HasPrefix(string(got), doc) {
			t.Fatalf("cut at %d: %q, %v; want a prefix of %q", cut, got, err, doc)
		}
	}
	if got, _ := signing.UnverifiedPrefix(signed); !strings.HasPrefix(string(got), doc) {
		t.Errorf("whole document: %q", got)
	}
	if _, err := signing.UnverifiedPrefix(signed[:start-1]); !errors.Is(err, signing.ErrMalformed) {
		t.Errorf("cut in the header: %v, want ErrMalformed", err)
	}
	if _, err := signing.UnverifiedPrefix([]byte(doc)); !errors.Is(err, signing.ErrNotSigned) {
		t.Errorf("plain text: %v, want ErrNotSigned", err)
	}
}
