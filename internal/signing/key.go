package signing

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// SecretKey is an OpenPGP secret key as read from its armoured file,
// possibly still locked by a passphrase.
type SecretKey struct {
	entity *openpgp.Entity
}

// ParseSecretKey reads one ASCII-armoured secret key
// (-----BEGIN PGP PRIVATE KEY BLOCK-----), as `gpg --armor
// --export-secret-keys` and Generate write it.
func ParseSecretKey(data []byte) (*SecretKey, error) {
	block, rest, err := decodeArmored(bytes.TrimSpace(data))
	if err != nil {
		return nil, fmt.Errorf("not an ASCII-armoured OpenPGP secret key: %w", err)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("text after the secret key block: want one key")
	}
	if block.Type != openpgp.PrivateKeyType {
		return nil, fmt.Errorf("want an OpenPGP secret key (%s), got a %s", openpgp.PrivateKeyType, block.Type)
	}
	list, err := openpgp.ReadKeyRing(block.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the secret key: %w", err)
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("want one secret key, found %d", len(list))
	}
	e := list[0]
	if e.PrivateKey == nil {
		return nil, errors.New("the key has no secret part")
	}
	return &SecretKey{entity: e}, nil
}

// Fingerprint is the primary key's fingerprint.
func (k *SecretKey) Fingerprint() Fingerprint { return fingerprintOf(k.entity.PrimaryKey) }

// Locked reports whether a passphrase protects the key.
func (k *SecretKey) Locked() bool {
	if k.entity.PrivateKey.Encrypted {
		return true
	}
	for _, s := range k.entity.Subkeys {
		if s.PrivateKey != nil && s.PrivateKey.Encrypted {
			return true
		}
	}
	return false
}

// ExportPublic writes the public key (primary key, user IDs, subkeys and
// their self-signatures), ASCII-armoured or binary. gpgv takes the binary
// form as its --keyring; Keyring reads both.
func (k *SecretKey) ExportPublic(w io.Writer, armored bool) error {
	if !armored {
		return k.entity.Serialize(w)
	}
	aw, err := armor.Encode(w, openpgp.PublicKeyType, nil)
	if err != nil {
		return err
	}
	if err := k.entity.Serialize(aw); err != nil {
		return err
	}
	if err := aw.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n")
	return err
}

// Signer unlocks the key with passphrase (ignored when the key has none)
// and returns a Signer using its signing key (the primary key or a
// signing subkey) valid at now.
func (k *SecretKey) Signer(passphrase []byte, now time.Time) (*Signer, error) {
	if k.Locked() {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("signing key %s is protected by a passphrase: set %s", k.Fingerprint(), PassphraseEnv)
		}
		if err := k.entity.DecryptPrivateKeys(passphrase); err != nil {
			return nil, fmt.Errorf("signing key %s: wrong passphrase in %s", k.Fingerprint(), PassphraseEnv)
		}
	}
	sk, ok := k.entity.SigningKey(now)
	if !ok || sk.PrivateKey == nil {
		return nil, fmt.Errorf("signing key %s has no valid signing key at %s (expired, revoked, or not for signing)", k.Fingerprint(), now.UTC().Format(time.RFC3339))
	}
	return &Signer{entity: k.entity, keyID: sk.PublicKey.KeyId, key: fingerprintOf(sk.PublicKey)}, nil
}

// Generate makes a new signing key for name <email>: a v4 Ed25519 primary
// key that signs and certifies, with no subkey and no expiry (rotate it as
// the README says), which gpg 2.2 and later read. It returns the secret
// key ASCII-armoured, protected with passphrase when that is not empty.
func Generate(name, email string, passphrase []byte, now time.Time) ([]byte, Fingerprint, error) {
	cfg := &packet.Config{
		Algorithm:   packet.PubKeyAlgoEdDSA,
		Curve:       packet.Curve25519,
		DefaultHash: crypto.SHA512,
		Time:        func() time.Time { return now },
	}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("generating the key: %w", err)
	}
	e.Subkeys = nil // NewEntity adds an encryption subkey: a signing key needs none
	if len(passphrase) > 0 {
		if err := e.EncryptPrivateKeys(passphrase, cfg); err != nil {
			return nil, "", fmt.Errorf("protecting the key: %w", err)
		}
	}
	var buf bytes.Buffer
	aw, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, "", err
	}
	if err := e.SerializePrivateWithoutSigning(aw, cfg); err != nil {
		return nil, "", fmt.Errorf("writing the key: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, "", err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), fingerprintOf(e.PrimaryKey), nil
}
