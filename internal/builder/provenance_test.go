package builder

import (
	"context"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/provenance"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/store/memstore"
	"github.com/incus-appliance/registry/internal/tooltest"
)

// A build records what its image's provenance names, and the request
// describing it carries those facts: the appliance folder's and base's
// digests as of the build, distrobuilder's version, the installed packages
// and APT sources, the git source when the folder is in git, who built
// it. Published, the statement's subject is the image's files.
func TestBuildProvenance(t *testing.T) {
	for _, inGit := range []bool{false, true} {
		a := web(t, validYAML)
		if inGit {
			root := strings.TrimSuffix(a.Dir, "/web")
			for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "x"}, {"remote", "add", "origin", "https://git.example.org/appliances.git"}} {
				tooltest.Run(t, "git", append([]string{"-C", root}, args...)...)
			}
		}
		t.Setenv(BuilderIDEnv, "https://ci.example.org/release")
		bin, _ := fakeDistrobuilder(t)
		target := webAmd64(t.TempDir())
		if _, err := Container(context.Background(), a, target, Options{Compression: "gzip-1", Distrobuilder: bin}); err != nil {
			t.Fatal(err)
		}
		req, err := Request(context.Background(), a, target, FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		in := req.Provenance
		folder, _ := inputsHash(a.Dir)
		switch {
		case in == nil:
			t.Fatal("no provenance facts")
		case in.Appliance != "web" || in.Arch != "amd64" || in.Variant != "default" || in.Base != "debian/bookworm" || in.Distrobuilder != "3.2":
			t.Errorf("facts %+v", in)
		case in.FolderDigest["sha256"] != folder || len(in.BaseSHA256) != 64 || in.FinishedOn.Before(in.StartedOn) || in.StartedOn.IsZero():
			t.Errorf("digests and times: %+v", in)
		case in.Packages["nginx-light"] != "1.22.1-9" || len(in.APTSources) != 1:
			t.Errorf("packages %v, sources %v", in.Packages, in.APTSources)
		case in.BuilderID != "https://ci.example.org/release":
			t.Errorf("builder %s", in.BuilderID)
		case inGit && (in.Source == nil || in.Source.Path != "web" || in.Source.URL != "https://git.example.org/appliances.git" || len(in.Source.Commit) != 40 || in.Folder != "web"):
			t.Errorf("git source %+v, folder %s", in.Source, in.Folder)
		case !inGit && (in.Source != nil || !strings.HasSuffix(in.Folder, "/web") || !strings.HasSuffix(in.BasePath, "/_bases/debian-bookworm.yaml")):
			t.Errorf("outside git: source %+v, folder %s, base %s", in.Source, in.Folder, in.BasePath)
		}
		reg := registry.New(memstore.New())
		req.DeltaDepth = 0
		if _, err := reg.Publish(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		data, _, err := reg.Provenance(context.Background(), "web", "")
		if err != nil {
			t.Fatal(err)
		}
		st, err := provenance.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(st.SubjectSHA256()); n != len(req.Image.Files()) {
			t.Errorf("%d subjects, the image has %d files", n, len(req.Image.Files()))
		}
	}
}

// builderOf: the variable wins; a GitHub Actions run names its workflow
// and run; otherwise the host.
func TestBuilderOf(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	gh := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_WORKFLOW_REF": "o/r/.github/workflows/release.yml@refs/heads/main",
		"GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "1"}
	if id, v, inv := builderOf(env(gh)); id != "https://github.com/o/r/.github/workflows/release.yml@refs/heads/main" || inv != "https://github.com/o/r/actions/runs/42/attempts/1" || v["publish"] == "" {
		t.Errorf("GitHub Actions: %s %v %s", id, v, inv)
	}
	gh[BuilderIDEnv] = "https://ci.example.org"
	if id, _, _ := builderOf(env(gh)); id != "https://ci.example.org" {
		t.Errorf("%s set: %s", BuilderIDEnv, id)
	}
	if id, _, inv := builderOf(env(nil)); !strings.HasPrefix(id, "urn:publish:host:") || inv != "" {
		t.Errorf("a host: %s %s", id, inv)
	}
}
