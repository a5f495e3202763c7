package provenance_test

import (
	"os"
	"path/filepath"
	"testing"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// TestReferenceTypesAccept: the in-toto project's own types read the
// golden statements strictly (no unknown field, every field of the right
// type) and their validators pass, for the statement and the SLSA
// predicate.
func TestReferenceTypesAccept(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var st intoto.Statement
		readStrictly(t, f, "in-toto Statement", data, &st)
		pred, err := protojson.Marshal(st.GetPredicate())
		if err != nil {
			t.Fatal(err)
		}
		readStrictly(t, f, "SLSA Provenance v1", pred, &slsa.Provenance{})
	}
}

// readStrictly reads data (from file f) into msg with protojson, which
// refuses unknown fields and wrong types, and runs msg's validator.
func readStrictly(t *testing.T, f, what string, data []byte, msg interface {
	proto.Message
	Validate() error
}) {
	t.Helper()
	if err := protojson.Unmarshal(data, msg); err != nil {
		t.Fatalf("%s: %s: %v", f, what, err)
	}
	if err := msg.Validate(); err != nil {
		t.Errorf("%s: %s: %v", f, what, err)
	}
}
