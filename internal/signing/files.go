package signing

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// ReadSecretKey reads the secret key spec names: a file, or the armoured
// key itself when spec starts with -----BEGIN PGP PRIVATE KEY BLOCK-----
// (as a CI secret store puts it in an environment variable).
func ReadSecretKey(spec string) (*SecretKey, error) {
	data := []byte(spec)
	name := "the signing key"
	if !strings.HasPrefix(strings.TrimSpace(spec), "-----BEGIN "+openpgp.PrivateKeyType+"-----") {
		var err error
		if data, err = os.ReadFile(spec); err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		name = spec
	}
	k, err := ParseSecretKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return k, nil
}

// LoadSigner reads the secret key spec names (see ReadSecretKey) and
// unlocks it with the passphrase in the environment variable
// PassphraseEnv when it has one.
func LoadSigner(spec string, now time.Time) (*Signer, error) {
	k, err := ReadSecretKey(spec)
	if err != nil {
		return nil, err
	}
	return k.Signer([]byte(os.Getenv(PassphraseEnv)), now)
}

// ReadKeyring reads a keyring file (see ParseKeyring).
func ReadKeyring(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	k, err := ParseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// WriteSecretKeyFile writes an armoured secret key to a new file of mode
// 0600 (its folder created 0700 when missing); it never replaces a file.
func WriteSecretKeyFile(path string, armored []byte) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists: not replacing a key (choose another file, or move it away first)", path)
	}
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if _, err := f.Write(armored); err != nil {
		return err
	}
	return f.Sync()
}
