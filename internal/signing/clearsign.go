package signing

import (
	"bytes"
	"fmt"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// The lines framing a clear-signed document (RFC 9580, 7).
const (
	beginSigned    = "-----BEGIN PGP SIGNED MESSAGE-----"
	beginSignature = "-----BEGIN PGP SIGNATURE-----"
	endSignature   = "-----END PGP SIGNATURE-----"
)

// Signer clear-signs documents with an unlocked secret key.
type Signer struct {
	entity *openpgp.Entity
	keyID  uint64      // the key that signs: the primary key or a signing subkey
	key    Fingerprint // its fingerprint
}

// Fingerprint is the signer's primary key fingerprint: what Verify
// reports as the signer.
func (s *Signer) Fingerprint() Fingerprint { return fingerprintOf(s.entity.PrimaryKey) }

// Keyring is the signer's public key alone: what verifies its own
// signatures.
func (s *Signer) Keyring() *Keyring {
	return &Keyring{entities: openpgp.EntityList{s.entity}}
}

// Sign returns doc clear-signed at now (the .sjson form of a .json file):
//
//	-----BEGIN PGP SIGNED MESSAGE-----
//	Hash: SHA256
//
//	<doc, lines starting with '-' escaped as "- -">
//	-----BEGIN PGP SIGNATURE-----
//	...
//	-----END PGP SIGNATURE-----
//
// The line break before the signature block belongs to the framing, not to
// the signed text, so a doc ending in a newline gets an empty last line:
// the final newline, or its absence, is signed. The Hash header is always
// written: the reference client's parser drops the first body line without
// it. A doc with trailing spaces or tabs on a line, or a carriage return,
// is refused with ErrNotClearSignable.
func (s *Signer) Sign(doc []byte, now time.Time) ([]byte, error) {
	if err := CheckClearSignable(doc); err != nil {
		return nil, err
	}
	cfg := &packet.Config{Time: func() time.Time { return now }, SigningKeyId: s.keyID}
	var sig bytes.Buffer
	if err := openpgp.DetachSignText(&sig, s.entity, bytes.NewReader(doc), cfg); err != nil {
		return nil, fmt.Errorf("signing with key %s: %w", s.key, err)
	}
	p, err := packet.Read(bytes.NewReader(sig.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("reading back the signature: %w", err)
	}
	hashName, ok := hashNames[p.(*packet.Signature).Hash]
	if !ok {
		return nil, fmt.Errorf("signing with key %s: unexpected hash %v", s.key, p.(*packet.Signature).Hash)
	}

	out := bytes.NewBuffer(make([]byte, 0, len(doc)+len(doc)/64+1024))
	out.WriteString(beginSigned + "\nHash: " + hashName + "\n\n")
	writeDashEscaped(out, doc)
	out.WriteByte('\n')
	aw, err := armor.Encode(out, openpgp.SignatureType, nil)
	if err != nil {
		return nil, err
	}
	if _, err := aw.Write(sig.Bytes()); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// writeDashEscaped writes doc with "- " before every line that starts
// with '-', so that no line of it can be taken for a framing line. The
// text between such lines is copied in one piece.
func writeDashEscaped(out *bytes.Buffer, doc []byte) {
	if len(doc) > 0 && doc[0] == '-' {
		out.WriteString("- ")
	}
	for {
		i := bytes.Index(doc, []byte("\n-"))
		if i < 0 {
			out.Write(doc)
			return
		}
		out.Write(doc[:i+1])
		out.WriteString("- ")
		doc = doc[i+1:]
	}
}

// CheckClearSignable reports whether clear-signing carries doc exactly:
// no line ends in a space or a tab, and there is no carriage return.
func CheckClearSignable(doc []byte) error {
	lineOf := func(i int) int { return 1 + bytes.Count(doc[:i], []byte{'\n'}) }
	if i := bytes.IndexByte(doc, '\r'); i >= 0 {
		return fmt.Errorf("%w: carriage return on line %d", ErrNotClearSignable, lineOf(i))
	}
	first := -1
	for _, ws := range []string{" \n", "\t\n"} {
		if i := bytes.Index(doc, []byte(ws)); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first < 0 && len(doc) > 0 && (doc[len(doc)-1] == ' ' || doc[len(doc)-1] == '\t') {
		first = len(doc) - 1
	}
	if first >= 0 {
		return fmt.Errorf("%w: line %d ends in whitespace", ErrNotClearSignable, lineOf(first))
	}
	return nil
}
