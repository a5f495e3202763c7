// Package signing signs and verifies registry documents with OpenPGP: the
// clear-signed form SimpleStreams publishers use for their .sjson files
// (cloud-images.ubuntu.com, images.linuxcontainers.org), which the
// reference client checks with gpgv.
//
// Sign and Verify agree on the exact bytes: the body Verify returns is,
// byte for byte, the document Sign was given, so a verifier can check that
// an .sjson holds exactly its .json. Clear-signing cannot carry trailing
// spaces or tabs on a line, nor a carriage return (RFC 9580, 7.1: both
// are dropped before hashing), so Sign refuses such a document instead of
// signing something else; lines starting with '-' are dash-escaped and a
// missing or present final newline is kept.
//
// The package does no I/O beyond files.go, which reads keys and keyrings
// from files and the passphrase from PassphraseEnv.
package signing

import (
	"encoding/hex"
	"errors"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// PassphraseEnv names the environment variable holding the passphrase of
// a passphrase-protected signing key.
const PassphraseEnv = "PUBLISH_SIGNING_KEY_PASSPHRASE"

// Errors Verify returns, each wrapped with details; test with errors.Is.
var (
	// ErrNotSigned: the document is not clear-signed at all (plain JSON).
	ErrNotSigned = errors.New("not a clear-signed document")
	// ErrMalformed: it looks clear-signed but is not well formed (text
	// around it, a broken header or armour, an unreadable signature).
	ErrMalformed = errors.New("malformed clear-signed document")
	// ErrUnknownKey: signed by no key of the keyring.
	ErrUnknownKey = errors.New("signed by a key not in the keyring")
	// ErrBadSignature: signed by a key of the keyring, but the signature
	// does not match the text (tampered), or the key has expired or was
	// revoked.
	ErrBadSignature = errors.New("bad signature")
)

// ErrNotClearSignable is returned by Sign for a document clear-signing
// cannot carry exactly (trailing whitespace on a line, a carriage return).
var ErrNotClearSignable = errors.New("document cannot be clear-signed exactly")

// Fingerprint is an OpenPGP key fingerprint in upper-case hex (40 digits
// for the v4 keys gpg and this package make).
type Fingerprint string

func fingerprintOf(pk *packet.PublicKey) Fingerprint {
	return Fingerprint(strings.ToUpper(hex.EncodeToString(pk.Fingerprint)))
}

// Reason names why Verify refused a document, for reports and metrics:
// "not-signed", "malformed", "unknown-key" or "bad-signature" (any other
// error).
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrNotSigned):
		return "not-signed"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrUnknownKey):
		return "unknown-key"
	}
	return "bad-signature"
}
