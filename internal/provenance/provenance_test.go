package provenance

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/debian"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/gitrepo"
)

func sampleInputs() Inputs {
	return Inputs{
		Appliance: "nginx", Variant: "default", Arch: "amd64", ImageType: "container",
		Files: []File{
			{"rootfs.squashfs", strings.Repeat("b", 64)},
			{"incus.tar.xz", strings.Repeat("a", 64)},
		},
		Folder:       "appliances/nginx",
		FolderDigest: DigestSet{"sha256": strings.Repeat("c", 64)},
		Source: &gitrepo.Source{
			URL:    "https://github.com/example/appliances.git",
			Commit: "0123456789abcdef0123456789abcdef01234567",
			Path:   "appliances/nginx",
		},
		Base: "debian/trixie", BasePath: "appliances/_bases/debian-trixie.yaml", BaseSHA256: strings.Repeat("d", 64),
		Distrobuilder: "3.2",
		Packages:      debian.Packages{"nginx": "1.26.3-3+deb13u1", "libc6": "2.41-12", "base-files": "13.8"},
		APTSources: []debian.Source{
			{URI: "http://deb.debian.org/debian", Suite: "trixie", Components: []string{"main"}},
			{URI: "http://security.debian.org/debian-security", Suite: "trixie-security", Components: []string{"main"}},
		},
		BuilderID:      "https://github.com/example/appliances/.github/workflows/release.yml@refs/heads/main",
		BuilderVersion: map[string]string{"publish": "v0.9.0"},
		InvocationID:   "https://github.com/example/appliances/actions/runs/42/attempts/1",
		StartedOn:      time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		FinishedOn:     time.Date(2026, 12, 1, 10, 7, 30, 0, time.FixedZone("CET", 3600)),
		GateReport:     []byte("{\n  \"appliance\": \"nginx\",\n  \"passed\": true\n}\n"),
	}
}

// TestGolden: the statement for sample inputs, byte for byte (go test
// -update rewrites the golden files after a deliberate change).
func TestGolden(t *testing.T) {
	outside := sampleInputs()
	outside.Source, outside.Folder = nil, "appliances/nginx"
	outside.GateReport, outside.InvocationID, outside.StartedOn, outside.FinishedOn = nil, "", time.Time{}, time.Time{}
	for name, in := range map[string]Inputs{"git.json": sampleInputs(), "no-git-no-gate.json": outside} {
		got := mustMarshal(t, in)
		filetest.Golden(t, filepath.Join("testdata", name), got)
		// Canonical: what Parse reads, Marshal writes back unchanged.
		back, err := Parse(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := back.Marshal()
		if err != nil || !bytes.Equal(again, got) {
			t.Errorf("%s: Marshal(Parse(b)) != b (%v):\n%s", name, err, again)
		}
		if sums := back.SubjectSHA256(); len(sums) != 2 || sums["incus.tar.xz"] != strings.Repeat("a", 64) {
			t.Errorf("SubjectSHA256 = %v", sums)
		}
	}
}

// TestDeterministic: the same facts in another order make the same bytes.
func TestDeterministic(t *testing.T) {
	a, b := sampleInputs(), sampleInputs()
	b.Files = []File{b.Files[1], b.Files[0]}
	ma := mustMarshal(t, a)
	for range 5 {
		if mb := mustMarshal(t, b); !bytes.Equal(ma, mb) {
			t.Fatalf("two encodings of the same inputs differ:\n%s\n%s", ma, mb)
		}
	}
}

func mustMarshal(t *testing.T, in Inputs) []byte {
	t.Helper()
	st, err := New(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewRefuses(t *testing.T) {
	for name, edit := range map[string]func(*Inputs){
		"no files":          func(in *Inputs) { in.Files = nil },
		"short sha256":      func(in *Inputs) { in.Files[0].SHA256 = "abc" },
		"upper-case sha256": func(in *Inputs) { in.Files[0].SHA256 = strings.Repeat("A", 64) },
		"repeated file":     func(in *Inputs) { in.Files[1].Name = in.Files[0].Name },
		"no appliance":      func(in *Inputs) { in.Appliance = "" },
		"no builder":        func(in *Inputs) { in.BuilderID = "" },
		"no folder":         func(in *Inputs) { in.Folder = "" },
		"bad folder digest": func(in *Inputs) { in.FolderDigest = DigestSet{"sha256": "xyz"} },
		"bad base template": func(in *Inputs) { in.BaseSHA256 = "1" },
	} {
		in := sampleInputs()
		edit(&in)
		if _, err := New(in); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	good := mustMarshal(t, sampleInputs())
	for name, data := range map[string]string{
		"not json":          "{",
		"another type":      strings.Replace(string(good), StatementType, "https://in-toto.io/Statement/v0.1", 1),
		"another predicate": strings.Replace(string(good), PredicateType, "https://slsa.dev/provenance/v0.2", 1),
		"no subject":        `{"_type": "` + StatementType + `", "predicateType": "` + PredicateType + `", "subject": []}`,
	} {
		if _, err := Parse([]byte(data)); err == nil {
			t.Errorf("%s: Parse accepted it", name)
		}
	}
}
