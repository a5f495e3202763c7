package provenance

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Marshal encodes the statement canonically: object keys sorted at every
// level, two-space indentation, no HTML escaping, a final newline. The
// same statement always encodes to the same bytes, and Marshal(Parse(b))
// is b for every b Marshal made, so the bytes can be stored
// content-addressed and referenced by their sha256.
func (s *Statement) Marshal() ([]byte, error) {
	raw, err := encode(s, "")
	if err != nil {
		return nil, err
	}
	// Through a generic value, so that struct fields come out sorted like
	// map keys.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return encode(v, "  ")
}

func encode(v any, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Parse reads an encoded statement and checks that it is an in-toto
// Statement v1 with a SLSA Provenance v1 predicate and a subject.
func Parse(data []byte) (*Statement, error) {
	var s Statement
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	switch {
	case s.Type != StatementType:
		return nil, fmt.Errorf("provenance: _type %q, want %s", s.Type, StatementType)
	case s.PredicateType != PredicateType:
		return nil, fmt.Errorf("provenance: predicateType %q, want %s", s.PredicateType, PredicateType)
	case len(s.Subject) == 0:
		return nil, fmt.Errorf("provenance: no subject")
	}
	return &s, nil
}

// SubjectSHA256 maps each subject's name to its sha256.
func (s *Statement) SubjectSHA256() map[string]string {
	out := make(map[string]string, len(s.Subject))
	for _, d := range s.Subject {
		out[d.Name] = d.Digest["sha256"]
	}
	return out
}
