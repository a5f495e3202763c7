package builder

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/gitrepo"
	"github.com/incus-appliance/registry/internal/provenance"
)

// describeSources records what the build read besides its inputs hash:
// the appliance folder's digest, its base template's and its git source
// (none outside a git work tree).
func (r *record) describeSources(ctx context.Context, a *appliance.Appliance) error {
	var err error
	if r.FolderSHA256, err = inputsHash(a.Dir); err != nil {
		return err
	}
	base, err := os.ReadFile(a.BasePath())
	if err != nil {
		return err
	}
	r.BaseSHA256 = digest.Of(base)
	src, ok, err := gitrepo.Describe(ctx, a.Dir)
	if ok {
		r.Source = &src
	}
	return err
}

// provenanceOf is what the build of t was made from, for the provenance
// statement of its image (registry.PublishRequest.Provenance: the registry
// adds the subject, a release the gate report): its record, package list
// and APT sources, and who builds (builderOf). A build recorded before
// these facts existed gets a statement without them; outputs without a
// build record (not made by Container) get none.
func provenanceOf(a *appliance.Appliance, t Target) (*provenance.Inputs, error) {
	rec, err := readRecord(t)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	folder := filepath.ToSlash(filepath.Join(filepath.Base(filepath.Dir(a.Dir)), filepath.Base(a.Dir)))
	if rec.Source != nil {
		folder = rec.Source.Path
	}
	in := &provenance.Inputs{
		Appliance: a.Name, Variant: appliance.VariantDefault, Arch: t.Arch, ImageType: "container",
		Folder: folder, Source: rec.Source,
		Base: a.Base, BasePath: path.Join(path.Dir(folder), appliance.BasesDir, filepath.Base(a.BasePath())), BaseSHA256: rec.BaseSHA256,
		Distrobuilder: rec.Distrobuilder, StartedOn: rec.Started, FinishedOn: rec.Built,
	}
	if !t.IsDefault() {
		in.Variant = t.Variant
	}
	if rec.FolderSHA256 != "" {
		in.FolderDigest = provenance.DigestSet{"sha256": rec.FolderSHA256}
	}
	if in.Packages, err = installedPackages(t.Dir()); err != nil {
		return nil, err
	}
	if sources, err := aptSources(t.Dir()); err == nil {
		in.APTSources = sources
	}
	in.BuilderID, in.BuilderVersion, in.InvocationID = builderOf(os.Getenv)
	return in, nil
}

// BuilderIDEnv names the environment variable that says who builds, for
// the provenance (a CI system's URI for its release job).
const BuilderIDEnv = "PUBLISH_BUILDER_ID"

// builderOf says who runs the build: BuilderIDEnv when set; in GitHub
// Actions, the workflow at its ref, and the run as the invocation;
// otherwise this host. The version is publish's own.
func builderOf(getenv func(string) string) (id string, version map[string]string, invocation string) {
	version = map[string]string{"publish": publishVersion()}
	if server, workflow := getenv("GITHUB_SERVER_URL"), getenv("GITHUB_WORKFLOW_REF"); getenv("GITHUB_ACTIONS") == "true" && server != "" && workflow != "" {
		id = server + "/" + workflow
		invocation = server + "/" + getenv("GITHUB_REPOSITORY") + "/actions/runs/" + getenv("GITHUB_RUN_ID") + "/attempts/" + getenv("GITHUB_RUN_ATTEMPT")
	}
	if v := getenv(BuilderIDEnv); v != "" {
		id = v
	}
	if id == "" {
		host, _ := os.Hostname()
		id = "urn:publish:host:" + host
	}
	return id, version, invocation
}

// publishVersion is this binary's version: its module version, or the
// VCS revision it was built from.
func publishVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return bi.Main.Version
}
