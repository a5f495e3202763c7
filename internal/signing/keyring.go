package signing

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// Keyring is the set of public keys a verifier trusts.
type Keyring struct {
	entities openpgp.EntityList
}

// ParseKeyring reads public keys: binary OpenPGP packets (a gpg keyring
// file, `gpg --export`, `publish key export --binary`) or one or more
// ASCII-armoured public key blocks, concatenated (`gpg --armor --export`,
// `publish key export`), with any number of keys. A secret key is refused:
// a verifier needs only the public part. So is a GnuPG keybox (.kbx).
func ParseKeyring(data []byte) (*Keyring, error) {
	var list openpgp.EntityList
	var err error
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return nil, errors.New("empty keyring")
	case len(data) >= 12 && string(data[8:12]) == "KBXf":
		return nil, errors.New("a GnuPG keybox (.kbx) is not an OpenPGP keyring: export the keys with gpg --export")
	case data[0]&0x80 != 0:
		list, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	default:
		list, err = readArmoredKeys(data)
	}
	if err != nil {
		return nil, fmt.Errorf("reading keyring: %w", err)
	}
	for _, e := range list {
		if e.PrivateKey != nil {
			return nil, fmt.Errorf("keyring holds the secret key %s: give verifiers the public key only (publish key export)", fingerprintOf(e.PrimaryKey))
		}
	}
	if len(list) == 0 {
		return nil, errors.New("keyring holds no key")
	}
	return &Keyring{entities: list}, nil
}

// readArmoredKeys reads every armoured public key block in data.
func readArmoredKeys(data []byte) (openpgp.EntityList, error) {
	var list openpgp.EntityList
	for rest := bytes.TrimSpace(data); len(rest) > 0; {
		block, next, err := decodeArmored(rest)
		if err != nil {
			return nil, fmt.Errorf("neither binary OpenPGP keys nor an ASCII-armoured key block: %w", err)
		}
		if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("want a public key block, got a %s", block.Type)
		}
		keys, err := openpgp.ReadKeyRing(block.Body)
		if err != nil {
			return nil, err
		}
		list = append(list, keys...)
		rest = bytes.TrimSpace(next)
	}
	return list, nil
}

// decodeArmored decodes the armoured block data starts with and returns
// what follows its END line.
func decodeArmored(data []byte) (*armor.Block, []byte, error) {
	block, err := armor.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, nil, err
	}
	// armor.Decode reads through a buffer: find where the block ends in
	// data rather than trusting the reader's position.
	endLine := []byte("-----END " + block.Type + "-----")
	end := bytes.Index(data, endLine)
	if end < 0 {
		return nil, nil, fmt.Errorf("a %s block without an END line", block.Type)
	}
	return block, data[end+len(endLine):], nil
}

// Fingerprints lists the primary key fingerprints of the keyring's keys.
func (k *Keyring) Fingerprints() []Fingerprint {
	out := make([]Fingerprint, len(k.entities))
	for i, e := range k.entities {
		out[i] = fingerprintOf(e.PrimaryKey)
	}
	return out
}
