package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
	"github.com/incus-appliance/registry/internal/provenance"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/store/dirstore"
)

// publish provenance NAME prints the statement a publish with build facts
// stored (the same bytes with --json); an image without one, or an
// unknown name, is a one-line error.
func TestProvenanceCommand(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry")
	st, err := dirstore.Open(reg, dirstore.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	meta := imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec("nginx", signT0))
	root := imagetest.WriteSquashfs(t, dir, 64<<10, 1)
	im, err := image.Inspect(context.Background(), meta, root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	req := registry.PublishRequest{Image: im.CatalogImage("nginx", nil, nil), MetadataPath: meta, RootPath: root, DeltaDepth: 0,
		Provenance: &provenance.Inputs{Appliance: "nginx", Arch: "amd64", Folder: "appliances/nginx", BuilderID: "https://ci.example.org"}}
	if _, err := registry.New(st).Publish(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	st.Close()
	mustRun(t, append(sampleArgs(t, "redis", signT0), "--bucket", reg)...)

	for _, args := range [][]string{{"provenance", "nginx"}, {"provenance", "nginx", "--arch", "amd64", "--json"}} {
		out := mustRun(t, append(args, "--bucket", reg)...)
		var s provenance.Statement
		if err := json.Unmarshal([]byte(out), &s); err != nil || s.Type != provenance.StatementType || len(s.Subject) != 2 {
			t.Errorf("%v: %v, %+v", args, err, s)
		}
	}
	for name, want := range map[string]string{"redis": "no provenance", "unbound": "unbound"} {
		code, _, stderr := runPublish(t, "provenance", name, "--bucket", reg)
		if code != 1 || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("provenance %s = %d, %q", name, code, stderr)
		}
	}
}
