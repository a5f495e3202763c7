package signing

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// hashNames are the Hash header names of the hashes signatures may use.
var hashNames = map[crypto.Hash]string{
	crypto.SHA224:   "SHA224",
	crypto.SHA256:   "SHA256",
	crypto.SHA384:   "SHA384",
	crypto.SHA512:   "SHA512",
	crypto.SHA3_256: "SHA3-256",
	crypto.SHA3_512: "SHA3-512",
}

// Verified is a clear-signed document whose signature checked out.
type Verified struct {
	// Body is the signed document, exactly the bytes given to Sign. It
	// usually shares memory with the bytes given to Verify (no copy of a
	// catalog of a hundred megabytes): modify neither.
	Body []byte
	// Signer is the fingerprint of the signer's primary key (the one a
	// keyring lists); SigningKey that of the key that made the signature
	// (the primary key or one of its signing subkeys).
	Signer, SigningKey Fingerprint
	// SignedAt is the signature's creation time.
	SignedAt time.Time
}

// MaxClockSkew is how far in the future of a verifier's clock a signature
// may have been made: the publisher's clock may run ahead of the
// verifier's by that much (keys are checked that much later, too: one
// expiring or revoked within it is already refused).
const MaxClockSkew = 5 * time.Minute

// Verify checks that signed is a clear-signed document signed by a key of
// the keyring, valid at now, and returns its body. Errors wrap
// ErrNotSigned, ErrMalformed, ErrUnknownKey or ErrBadSignature.
func (k *Keyring) Verify(signed []byte, now time.Time) (*Verified, error) {
	cs, err := parseClearSigned(signed)
	if err != nil {
		return nil, err
	}
	cfg := &packet.Config{Time: func() time.Time { return now.Add(MaxClockSkew) }}
	sig, signer, err := openpgp.VerifyDetachedSignature(k.entities, bytes.NewReader(cs.body), bytes.NewReader(cs.signature), cfg)
	if err != nil {
		return nil, classify(err, cs.sigs)
	}
	if sig.SigType != packet.SigTypeText {
		return nil, fmt.Errorf("%w: signature of type %#x, want a text signature", ErrMalformed, sig.SigType)
	}
	// gpgv takes a missing Hash header for MD5 and fails (RFC 4880, 7),
	// so a v4 signature needs one; v6 signatures need none (RFC 9580, 7).
	if sig.Version != 6 && !slices.Contains(cs.hashes, hashNames[sig.Hash]) {
		return nil, fmt.Errorf("%w: the Hash header (%q) does not name the signature's hash %s", ErrMalformed, strings.Join(cs.hashes, ","), hashNames[sig.Hash])
	}
	v := &Verified{Body: cs.body, Signer: fingerprintOf(signer.PrimaryKey), SignedAt: sig.CreationTime}
	v.SigningKey = v.Signer
	for _, s := range signer.Subkeys {
		if s.PublicKey.KeyId == *sig.IssuerKeyId {
			v.SigningKey = fingerprintOf(s.PublicKey)
		}
	}
	return v, nil
}

// classify maps an OpenPGP verification error to this package's errors.
func classify(err error, sigs []*packet.Signature) error {
	var structural pgperrors.StructuralError
	var unsupported pgperrors.UnsupportedError
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return fmt.Errorf("%w (issuer %s)", ErrUnknownKey, issuers(sigs))
	case errors.As(err, &structural), errors.As(err, &unsupported), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	default:
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
}

// issuers names the keys that made the signatures, for an error message.
func issuers(sigs []*packet.Signature) string {
	var ids []string
	for _, s := range sigs {
		switch {
		case s.IssuerFingerprint != nil:
			ids = append(ids, fmt.Sprintf("%X", s.IssuerFingerprint))
		case s.IssuerKeyId != nil:
			ids = append(ids, fmt.Sprintf("%016X", *s.IssuerKeyId))
		}
	}
	if len(ids) == 0 {
		return "not named"
	}
	return strings.Join(ids, ", ")
}

// clearSigned is a parsed clear-signed document.
type clearSigned struct {
	hashes    []string // the Hash header's names
	body      []byte   // the signed text: dash-escapes and trailing whitespace removed, lines joined by \n
	signature []byte   // the signature packets, de-armoured
	sigs      []*packet.Signature
}

// parseClearSigned parses a clear-signed document strictly: it must start
// with the BEGIN PGP SIGNED MESSAGE line and end with the signature block
// (then only blank space); the only header is Hash; every body line
// starting with '-' is dash-escaped. Lines may end in \n or \r\n.
func parseClearSigned(data []byte) (*clearSigned, error) {
	hashes, rest, err := parseHeader(data)
	if err != nil {
		return nil, err
	}
	cs := &clearSigned{hashes: hashes}
	body, armored, err := parseBody(rest)
	if err != nil {
		return nil, err
	}
	cs.body = body
	if cs.signature, err = parseSignatureBlock(armored); err != nil {
		return nil, err
	}
	if cs.sigs, err = readSignatures(cs.signature); err != nil {
		return nil, err
	}
	return cs, nil
}

// parseHeader reads the BEGIN line and the header of a clear-signed
// document: the hashes its Hash header names, and what follows the blank
// line ending it.
func parseHeader(data []byte) (hashes []string, rest []byte, err error) {
	line, rest, ok := nextLine(data)
	if !ok || string(line) != beginSigned {
		switch {
		case bytes.HasPrefix(data, []byte(beginSigned)):
			return nil, nil, fmt.Errorf("%w: bad first line", ErrMalformed)
		case bytes.Contains(data, []byte(beginSigned)):
			return nil, nil, fmt.Errorf("%w: text before %s", ErrMalformed, beginSigned)
		}
		return nil, nil, ErrNotSigned
	}
	for {
		if line, rest, ok = nextLine(rest); !ok {
			return nil, nil, fmt.Errorf("%w: no end of the header", ErrMalformed)
		}
		if len(line) == 0 {
			return hashes, rest, nil
		}
		name, value, found := strings.Cut(string(line), ":")
		if !found || strings.TrimSpace(name) != "Hash" {
			return nil, nil, fmt.Errorf("%w: header %.40q: only Hash is allowed", ErrMalformed, line)
		}
		for _, h := range strings.Split(value, ",") {
			hashes = append(hashes, strings.ToUpper(strings.TrimSpace(h)))
		}
	}
}

// parseBody reads the dash-escaped text up to the BEGIN PGP SIGNATURE
// line and returns the text and the rest, from that line on. When no line
// needs a change (no dash-escape, trailing whitespace or \r\n: a document
// Sign made from JSON), the text is a slice of data, not a copy; otherwise
// runs of unchanged lines are copied in one piece.
func parseBody(data []byte) (body, rest []byte, err error) {
	var copied []byte // nil until a line needs a change
	rest = data
	run := 0 // where the lines not yet copied start, in data
	for n := 1; ; n++ {
		line, next, ok := nextLine(rest)
		if !ok {
			return nil, nil, fmt.Errorf("%w: no signature block", ErrMalformed)
		}
		pos := len(data) - len(rest) // where line starts
		if string(line) == beginSignature {
			// The line break before the signature block is framing.
			if copied == nil {
				return data[:max(pos-1, 0)], rest, nil
			}
			return bytes.TrimSuffix(append(copied, data[run:pos]...), []byte{'\n'}), rest, nil
		}
		escaped := len(line) > 0 && line[0] == '-'
		if escaped && !bytes.HasPrefix(line, []byte("- ")) {
			return nil, nil, fmt.Errorf("%w: line %d starts with '-' but is not dash-escaped", ErrMalformed, n)
		}
		text := line
		if escaped {
			text = line[2:]
		}
		text = bytes.TrimRight(text, " \t")
		rest = next
		if !escaped && len(text) == len(line) && data[pos+len(line)] == '\n' {
			continue // unchanged
		}
		if copied == nil {
			copied = make([]byte, 0, len(data))
		}
		copied = append(copied, data[run:pos]...)
		copied = append(append(copied, text...), '\n')
		run = len(data) - len(rest)
	}
}

// parseSignatureBlock de-armours the signature block, which must be all
// that is left apart from blank space.
func parseSignatureBlock(data []byte) ([]byte, error) {
	end := bytes.Index(data, []byte(endSignature))
	if end < 0 {
		return nil, fmt.Errorf("%w: no %s line", ErrMalformed, endSignature)
	}
	if len(bytes.TrimSpace(data[end+len(endSignature):])) > 0 {
		return nil, fmt.Errorf("%w: text after the signature block", ErrMalformed)
	}
	block, err := armor.Decode(bytes.NewReader(data[:end+len(endSignature)]))
	if err != nil {
		return nil, fmt.Errorf("%w: signature block: %v", ErrMalformed, err)
	}
	if block.Type != openpgp.SignatureType {
		return nil, fmt.Errorf("%w: a %s block where the signature belongs", ErrMalformed, block.Type)
	}
	sig, err := io.ReadAll(block.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: signature block: %v", ErrMalformed, err)
	}
	return sig, nil
}

// readSignatures parses the signature packets: there must be at least
// one, and nothing else.
func readSignatures(data []byte) ([]*packet.Signature, error) {
	var sigs []*packet.Signature
	r := packet.NewReader(bytes.NewReader(data))
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
		}
		s, ok := p.(*packet.Signature)
		if !ok {
			return nil, fmt.Errorf("%w: a %T packet in the signature block", ErrMalformed, p)
		}
		sigs = append(sigs, s)
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%w: no signature in the signature block", ErrMalformed)
	}
	return sigs, nil
}

// nextLine splits data after its first line ending (\n or \r\n), which it
// drops; ok is false when data has none.
func nextLine(data []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		return nil, data, false
	}
	line = data[:i]
	if i > 0 && line[i-1] == '\r' {
		line = line[:i-1]
	}
	return line, data[i+1:], true
}

// Unverified returns the text of a clear-signed document without checking
// its signature: for a writer deciding whether a stored document is newer
// than the one it is about to store, never for trusting what it says.
// Errors wrap ErrNotSigned or ErrMalformed.
func Unverified(signed []byte) ([]byte, error) {
	cs, err := parseClearSigned(signed)
	if err != nil {
		return nil, err
	}
	return cs.body, nil
}

// UnverifiedPrefix is Unverified for prefix, the first bytes of a
// clear-signed document (a large one not read whole): the start of its
// text, its lines' dash-escapes removed, up to the end of prefix or of the
// text. Only the header is checked.
func UnverifiedPrefix(prefix []byte) ([]byte, error) {
	_, rest, err := parseHeader(prefix)
	if err != nil {
		return nil, err
	}
	var out []byte
	for len(rest) > 0 {
		line, next, ok := nextLine(rest)
		if !ok {
			line, next = rest, nil // the last line, cut short
		}
		if string(line) == beginSignature {
			break
		}
		if bytes.HasPrefix(line, []byte("- ")) {
			line = line[2:]
		}
		out = append(out, line...)
		if ok {
			out = append(out, '\n')
		}
		rest = next
	}
	return out, nil
}
