package provenance_test

import (
	"os"
	"path/filepath"
	"testing"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
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
		if err := protojson.Unmarshal(data, &st); err != nil {
			t.Fatalf("%s: in-toto Statement: %v", f, err)
		}
		if err := st.Validate(); err != nil {
			t.Errorf("%s: in-toto Statement: %v", f, err)
		}
		pred, err := protojson.Marshal(st.GetPredicate())
		if err != nil {
			t.Fatal(err)
		}
		var p slsa.Provenance
		if err := protojson.Unmarshal(pred, &p); err != nil {
			t.Fatalf("%s: SLSA Provenance v1: %v", f, err)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: SLSA Provenance v1: %v", f, err)
		}
	}
}
