package provenance

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/debian"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/gitrepo"
)

// Inputs are the plain facts a statement is built from.
type Inputs struct {
	// What was built.
	Appliance, Variant, Arch string
	ImageType                string // "container" or "virtual-machine"
	// Files are the image's files (the subject).
	Files []File
	// Folder is the appliance folder: its path in the repository, or
	// relative to the appliances folder's parent (never an absolute path of
	// the build host); FolderDigest the digest of its content; Source its
	// git source when it is in git (nil otherwise).
	Folder       string
	FolderDigest DigestSet
	Source       *gitrepo.Source
	// Base is the base template ("debian/trixie"), BasePath its file and
	// BaseSHA256 the file's SHA-256.
	Base, BasePath, BaseSHA256 string
	// Distrobuilder is distrobuilder's version.
	Distrobuilder string
	// Packages are the Debian packages installed in the image, and
	// APTSources the sources they came from.
	Packages   debian.Packages
	APTSources []debian.Source
	// BuilderID identifies who ran the build, BuilderVersion the versions
	// of its tools (e.g. {"publish": "v1.2.0"}).
	BuilderID      string
	BuilderVersion map[string]string
	// InvocationID, StartedOn, FinishedOn identify the run (optional).
	InvocationID          string
	StartedOn, FinishedOn time.Time
	// GateReport is the gate's report (gate.json) as written, nil when no
	// gate ran.
	GateReport []byte
}

// File is one subject: a file name and its SHA-256 in hex.
type File struct {
	Name, SHA256 string
}

// GateReportName is the byproduct name of the gate report.
const GateReportName = "gate.json"

// New builds the statement for in. It checks that the subject and the
// digests are well formed and sorts what has no order of its own (files,
// packages), so that the same inputs make the same statement.
func New(in Inputs) (*Statement, error) {
	if err := check(in); err != nil {
		return nil, err
	}
	st := &Statement{Type: StatementType, PredicateType: PredicateType}
	for _, f := range in.Files {
		st.Subject = append(st.Subject, ResourceDescriptor{Name: f.Name, Digest: DigestSet{"sha256": f.SHA256}})
	}
	sort.Slice(st.Subject, func(i, j int) bool { return st.Subject[i].Name < st.Subject[j].Name })

	p := &st.Predicate
	p.BuildDefinition = BuildDefinition{
		BuildType: BuildType,
		ExternalParameters: ExternalParameters{
			Appliance: in.Appliance, Variant: in.Variant, Architecture: in.Arch, ImageType: in.ImageType,
			Source: sourceParameter(in),
		},
		ResolvedDependencies: dependencies(in),
	}
	p.RunDetails.Builder = Builder{ID: in.BuilderID, Version: in.BuilderVersion}
	if md := metadata(in); md != nil {
		p.RunDetails.Metadata = md
	}
	if in.GateReport != nil {
		p.RunDetails.Byproducts = []ResourceDescriptor{{
			Name: GateReportName, MediaType: "application/json",
			Digest: DigestSet{"sha256": digest.Of(in.GateReport)}, Content: in.GateReport,
		}}
	}
	return st, nil
}

func check(in Inputs) error {
	switch {
	case in.Appliance == "" || in.Arch == "":
		return errors.New("provenance: the appliance and architecture are required")
	case len(in.Files) == 0:
		return errors.New("provenance: no subject: the image's files are required")
	case in.BuilderID == "":
		return errors.New("provenance: the builder id is required")
	case in.Folder == "":
		return errors.New("provenance: the appliance folder is required")
	}
	seen := map[string]bool{}
	for _, f := range in.Files {
		if f.Name == "" || seen[f.Name] {
			return fmt.Errorf("provenance: subject file name %q empty or repeated", f.Name)
		}
		seen[f.Name] = true
		if !isHex(f.SHA256, 64) {
			return fmt.Errorf("provenance: subject %s: sha256 %q is not 64 lower-case hex digits", f.Name, f.SHA256)
		}
	}
	if in.BaseSHA256 != "" && !isHex(in.BaseSHA256, 64) {
		return fmt.Errorf("provenance: base template sha256 %q is not 64 lower-case hex digits", in.BaseSHA256)
	}
	for alg, d := range in.FolderDigest {
		if !isHex(d, 0) {
			return fmt.Errorf("provenance: appliance folder digest %s %q is not lower-case hex", alg, d)
		}
	}
	return nil
}

func isHex(s string, n int) bool {
	if s == "" || (n > 0 && len(s) != n) {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// sourceParameter locates the appliance folder: git+URL@commit and its
// path in the repository when it is in git.
func sourceParameter(in Inputs) SourceParameter {
	if in.Source == nil {
		return SourceParameter{Path: in.Folder}
	}
	sp := SourceParameter{URI: gitURI(in.Source), Path: in.Source.Path}
	if in.Source.Commit != "" {
		sp.Digest = DigestSet{"gitCommit": in.Source.Commit}
	}
	return sp
}

// gitURI is the SPDX/SLSA form of a repository at a commit:
// git+https://host/org/repo@<commit> ("" without an origin).
func gitURI(s *gitrepo.Source) string {
	if s.URL == "" {
		return ""
	}
	uri := s.URL
	if !strings.HasPrefix(uri, "git+") {
		uri = "git+" + uri
	}
	if s.Commit != "" {
		uri += "@" + s.Commit
	}
	return uri
}

// dependencies lists what the build resolved, in a fixed order: the
// appliance folder, its repository, the base template, distrobuilder, the
// APT sources (in their order), the Debian packages (by name).
func dependencies(in Inputs) []ResourceDescriptor {
	folder := ResourceDescriptor{Name: "appliance-folder:" + in.Folder, Digest: in.FolderDigest}
	deps := []ResourceDescriptor{folder}
	if in.Source != nil {
		repo := ResourceDescriptor{Name: "source-repository", URI: gitURI(in.Source)}
		if in.Source.Commit != "" {
			repo.Digest = DigestSet{"gitCommit": in.Source.Commit}
		}
		repo.Annotations = map[string]any{"path": in.Source.Path, "dirty": in.Source.Dirty}
		deps = append(deps, repo)
	}
	if in.Base != "" {
		base := ResourceDescriptor{Name: "base-template:" + in.Base, Annotations: map[string]any{"path": in.BasePath}}
		if in.BaseSHA256 != "" {
			base.Digest = DigestSet{"sha256": in.BaseSHA256}
		}
		deps = append(deps, base)
	}
	if in.Distrobuilder != "" {
		deps = append(deps, ResourceDescriptor{Name: "distrobuilder", Annotations: map[string]any{"version": in.Distrobuilder}})
	}
	for _, s := range in.APTSources {
		deps = append(deps, ResourceDescriptor{
			Name: "apt-source", URI: s.URI,
			Annotations: map[string]any{"suite": s.Suite, "components": strings.Join(s.Components, " ")},
		})
	}
	names := make([]string, 0, len(in.Packages))
	for n := range in.Packages {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		deps = append(deps, ResourceDescriptor{Name: n, URI: debian.PackageURL(in.Base, n, in.Packages[n], "")})
	}
	return deps
}

func metadata(in Inputs) *BuildMetadata {
	md := &BuildMetadata{InvocationID: in.InvocationID}
	if !in.StartedOn.IsZero() {
		t := in.StartedOn.UTC()
		md.StartedOn = &t
	}
	if !in.FinishedOn.IsZero() {
		t := in.FinishedOn.UTC()
		md.FinishedOn = &t
	}
	if *md == (BuildMetadata{}) {
		return nil
	}
	return md
}
