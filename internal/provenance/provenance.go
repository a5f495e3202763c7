// Package provenance is the build provenance of a published image: an
// in-toto Statement v1 (https://in-toto.io/Statement/v1) whose subject is
// the image's files with their SHA-256 and whose predicate is SLSA
// Provenance v1 (https://slsa.dev/provenance/v1): what was built from
// what (the appliance folder, its git commit, the base template,
// distrobuilder, the Debian packages and APT sources), by which builder,
// and the gate report the build passed. New builds one from plain inputs
// and Marshal encodes it canonically; no I/O.
package provenance

import "time"

// The type URIs of the statement, its predicate and this registry's
// builds.
const (
	StatementType = "https://in-toto.io/Statement/v1"
	PredicateType = "https://slsa.dev/provenance/v1"
	// BuildType names how an appliance image is built: `publish build`
	// runs distrobuilder on the appliance's template (its base with its
	// overlay merged) for one architecture and variant, then the gate
	// launches it in Incus. Its externalParameters are ExternalParameters.
	BuildType = "https://github.com/incus-appliance/registry/provenance/appliance-build/v1"
	// MediaType is the media type of an encoded statement.
	MediaType = "application/vnd.in-toto+json"
)

// Statement is an in-toto Statement v1 with a SLSA Provenance v1
// predicate.
type Statement struct {
	Type          string               `json:"_type"`
	Subject       []ResourceDescriptor `json:"subject"`
	PredicateType string               `json:"predicateType"`
	Predicate     Provenance           `json:"predicate"`
}

// Provenance is the SLSA Provenance v1 predicate.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition says what the build was asked to do and from what.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   ExternalParameters   `json:"externalParameters"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies,omitempty"`
}

// ExternalParameters are the parameters of a BuildType build: what a
// release engineer chose.
type ExternalParameters struct {
	Appliance    string `json:"appliance"`
	Variant      string `json:"variant,omitempty"`
	Architecture string `json:"architecture"`
	// ImageType is "container" or "virtual-machine".
	ImageType string `json:"imageType,omitempty"`
	// Source is the appliance folder: in git, the repository URL, commit
	// and path; otherwise its path only.
	Source SourceParameter `json:"source"`
}

// SourceParameter locates the appliance folder the build read.
type SourceParameter struct {
	URI    string    `json:"uri,omitempty"`
	Digest DigestSet `json:"digest,omitempty"`
	Path   string    `json:"path"`
}

// RunDetails says who ran the build and what else came out of it.
type RunDetails struct {
	Builder    Builder              `json:"builder"`
	Metadata   *BuildMetadata       `json:"metadata,omitempty"`
	Byproducts []ResourceDescriptor `json:"byproducts,omitempty"`
}

// Builder identifies the build platform (a CI workflow, a release host).
type Builder struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// BuildMetadata is the run's identifier and times.
type BuildMetadata struct {
	InvocationID string     `json:"invocationId,omitempty"`
	StartedOn    *time.Time `json:"startedOn,omitempty"`
	FinishedOn   *time.Time `json:"finishedOn,omitempty"`
}

// ResourceDescriptor is an in-toto ResourceDescriptor: a file, a package,
// a repository at a commit.
type ResourceDescriptor struct {
	Name        string         `json:"name,omitempty"`
	URI         string         `json:"uri,omitempty"`
	Digest      DigestSet      `json:"digest,omitempty"`
	Content     []byte         `json:"content,omitempty"`
	MediaType   string         `json:"mediaType,omitempty"`
	Annotations map[string]any `json:"annotations,omitempty"`
}

// DigestSet maps a digest algorithm ("sha256", "gitCommit") to a
// lower-case hex digest.
type DigestSet map[string]string
