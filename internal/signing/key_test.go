package signing_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/signing"
)

// TestKeyringFormats: a verifier's keyring may be binary (gpg --export,
// key export --binary) or armoured, one block or several concatenated,
// with any number of keys; every key in it verifies.
func TestKeyringFormats(t *testing.T) {
	a, b := newTestKey(t, "a"), newTestKey(t, "b")
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	rings := map[string][]byte{
		"binary, two keys":              join(a.PublicBinary, b.PublicBinary),
		"armoured blocks, concatenated": join(a.PublicArmored, b.PublicArmored),
		"armoured blocks, blank lines":  join([]byte("\n\n"), a.PublicArmored, []byte("\n\n"), b.PublicArmored, []byte("\n")),
		"one armoured block, two keys":  armorKeys(t, join(a.PublicBinary, b.PublicBinary)),
	}
	docA, docB := a.sign(t, "a\n"), b.sign(t, "b\n")
	for name, data := range rings {
		t.Run(name, func(t *testing.T) {
			kr, err := signing.ParseKeyring(data)
			if err != nil {
				t.Fatal(err)
			}
			if got := kr.Fingerprints(); len(got) != 2 || got[0] != a.Fingerprint || got[1] != b.Fingerprint {
				t.Errorf("Fingerprints = %v, want [%s %s]", got, a.Fingerprint, b.Fingerprint)
			}
			for _, doc := range [][]byte{docA, docB} {
				if _, err := kr.Verify(doc, testNow); err != nil {
					t.Errorf("Verify: %v", err)
				}
			}
		})
	}
}

// armorKeys armours binary keys into one block, as gpg --armor --export
// of several keys does.
func armorKeys(t *testing.T, binary []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := armor.Encode(&out, "PGP PUBLIC KEY BLOCK", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(binary)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestKeyringRefuses(t *testing.T) {
	k := newTestKey(t, "k")
	kbx := append([]byte{0, 0, 0, 32, 1, 1, 0, 0}, []byte("KBXf")...)
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"empty":      {nil, "empty keyring"},
		"blank":      {[]byte(" \n"), "empty keyring"},
		"secret key": {k.Secret, "secret key"},
		"keybox":     {append(kbx, make([]byte, 20)...), "keybox"},
		"text":       {[]byte("hello"), "neither binary OpenPGP keys nor an ASCII-armoured key block"},
		"signature":  {k.sign(t, "x"), "PGP SIGNED MESSAGE"},
	} {
		if _, err := signing.ParseKeyring(c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ParseKeyring = %v, want an error with %q", name, err, c.want)
		}
	}
}

// TestPassphrase: a protected key signs only with its passphrase, and says
// which variable to set.
func TestPassphrase(t *testing.T) {
	secret, fpr, err := signing.Generate("locked", "locked@example.org", []byte("s3cret"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := signing.ParseSecretKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	if !sk.Locked() || sk.Fingerprint() != fpr {
		t.Fatalf("Locked = %v, Fingerprint = %s; want true, %s", sk.Locked(), sk.Fingerprint(), fpr)
	}
	if _, err := sk.Signer(nil, testNow); err == nil || !strings.Contains(err.Error(), signing.PassphraseEnv) {
		t.Errorf("Signer(no passphrase) = %v, want an error naming %s", err, signing.PassphraseEnv)
	}
	if _, err := sk.Signer([]byte("wrong"), testNow); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("Signer(wrong passphrase) = %v, want a wrong passphrase error", err)
	}
	s, err := sk.Signer([]byte("s3cret"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := sk.ExportPublic(&pub, true); err != nil {
		t.Fatal(err)
	}
	kr, err := signing.ParseKeyring(pub.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	signed, err := s.Sign([]byte(sampleDoc), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := kr.Verify(signed, testNow); err != nil || v.Signer != fpr {
		t.Fatalf("Verify = %v, %v", v, err)
	}
}

func TestParseSecretKeyRefuses(t *testing.T) {
	k := newTestKey(t, "k")
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"public key":      {k.PublicArmored, "want an OpenPGP secret key"},
		"binary":          {k.PublicBinary, "not an ASCII-armoured"},
		"two secret keys": {append(append([]byte{}, k.Secret...), newTestKey(t, "k2").Secret...), "want one key"},
		"nothing":         {nil, "not an ASCII-armoured"},
	} {
		_, err := signing.ParseSecretKey(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ParseSecretKey = %v, want an error with %q", name, err, c.want)
		}
	}
}

// TestGnuPGInterop: a key made by gpg (2.2, Ed25519, passphrase-protected)
// signs here, and a document gpg clear-signed verifies here, with the
// body gpg signed: trailing whitespace dropped, and the final newline too
// (gpg --clearsign does not sign it).
func TestGnuPGInterop(t *testing.T) {
	const fpr = "F756029E3266E0C7671A5C5A9227F251BA453E8F"
	kr, err := signing.ReadKeyring(filepath.Join("testdata", "gpg-pubring.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(signing.PassphraseEnv, "correct horse")
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := signing.LoadSigner(filepath.Join("testdata", "gpg-secret-passphrase.asc"), now)
	if err != nil {
		t.Fatal(err)
	}
	v, err := kr.Verify(must(s.Sign([]byte(sampleDoc), now)), now)
	if err != nil || string(v.Body) != sampleDoc || v.Signer != fpr {
		t.Fatalf("Verify(signed here with the gpg key) = %v, %v", v, err)
	}

	signed, json := readFile(t, "gpg-clearsigned.sjson"), readFile(t, "gpg-clearsigned.json")
	v, err = kr.Verify(signed, now)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSuffix(strings.ReplaceAll(string(json), "trailing   \n", "trailing\n"), "\n")
	if string(v.Body) != want || v.Signer != fpr {
		t.Errorf("Verify(gpg --clearsign) = %q by %s, want %q by %s", v.Body, v.Signer, want, fpr)
	}
}

// TestReadSecretKeyFromValue: PUBLISH_SIGNING_KEY may hold the armoured key
// itself (a CI secret) rather than a path.
func TestReadSecretKeyFromValue(t *testing.T) {
	k := newTestKey(t, "env")
	sk, err := signing.ReadSecretKey(string(k.Secret))
	if err != nil || sk.Fingerprint() != k.Fingerprint {
		t.Fatalf("ReadSecretKey(armoured key) = %v, %v", sk, err)
	}
	if _, err := signing.ReadSecretKey(filepath.Join(t.TempDir(), "missing.asc")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadSecretKey(missing file) = %v, want not exist", err)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	return filetest.Read(t, filepath.Join("testdata", name))
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
