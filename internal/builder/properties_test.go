package builder

import (
	"context"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/relations"
)

func TestWithProperties(t *testing.T) {
	in := "architecture: x86_64\nproperties:\n  os: debian\n  provides: \"old\"\n  release: bookworm\ntemplates: {}\n"
	out, err := withProperties([]byte(in), map[string]string{relations.Requires: `db=postgresql >=1.1, <2`})
	if err != nil {
		t.Fatal(err)
	}
	want := "architecture: x86_64\nproperties:\n  requires: \"db=postgresql >=1.1, <2\"\n  os: debian\n  release: bookworm\ntemplates: {}\n"
	if string(out) != want {
		t.Errorf("withProperties =\n%s\nwant\n%s", out, want)
	}
	if _, err := withProperties([]byte("architecture: x86_64\n"), nil); err == nil || !strings.Contains(err.Error(), "no properties: block") {
		t.Errorf("no properties block: %v", err)
	}
}

// A build writes the appliance's relations into the image's properties
// (what `incus image info` shows); a build made before builds wrote them
// gets them without distrobuilder running again.
func TestBuildWritesRelationProperties(t *testing.T) {
	a := web(t, validYAML)
	bin, runFile := fakeDistrobuilder(t)
	target, opts := webAmd64(t.TempDir()), Options{Compression: "gzip-1", Distrobuilder: bin}
	props := func() map[string]string {
		t.Helper()
		im, err := image.Inspect(context.Background(), target.Metadata(), target.Rootfs(), image.Options{Arch: "amd64"})
		if err != nil {
			t.Fatal(err)
		}
		return im.Metadata.Properties
	}
	// Built without relations: none in the properties.
	if _, err := Container(context.Background(), a, target, opts); err != nil {
		t.Fatal(err)
	}
	if p := props(); p["os"] != "debian" || p[relations.Provides] != "" || p[relations.Requires] != "" {
		t.Fatalf("properties without relations: %v", p)
	}
	// The same build seen by an appliance with relations (a build from
	// before builds wrote them): stale, then brought up to date.
	a.Provides = []relations.Provide{{Interface: "http", Port: 80}}
	a.Requires = []relations.Require{{Name: "db", Interface: "postgresql", Version: ">=1.1, <2"}}
	st, err := CheckStale(context.Background(), a, target, opts, nil)
	if err != nil || !st.Rebuild || !strings.Contains(strings.Join(st.Reasons, ";"), "image properties out of date") {
		t.Errorf("CheckStale = %+v, %v", st, err)
	}
	res, err := Container(context.Background(), a, target, opts)
	if err != nil || !res.Skipped || !res.Properties || runs(t, runFile) != 1 {
		t.Fatalf("properties sync: %+v %v (%d runs)", res, err, runs(t, runFile))
	}
	if p := props(); p["os"] != "debian" || p[relations.Provides] != "http:80" || p[relations.Requires] != "db=postgresql >=1.1, <2" {
		t.Errorf("properties after the sync: %v", p)
	}
	if !upToDate(target, res.Inputs) {
		t.Error("the digests were not recorded again")
	}
	if res, err := Container(context.Background(), a, target, opts); err != nil || !res.Skipped || res.Properties {
		t.Errorf("second build: %+v %v; want skipped, nothing rewritten", res, err)
	}
	if st, err := CheckStale(context.Background(), a, target, opts, nil); err != nil || st.Rebuild {
		t.Errorf("CheckStale after the sync = %+v, %v", st, err)
	}
	// A fresh build writes them too.
	opts.Force = true
	if _, err := Container(context.Background(), a, target, opts); err != nil {
		t.Fatal(err)
	}
	if p := props(); p[relations.Provides] != "http:80" || p[relations.Requires] != "db=postgresql >=1.1, <2" || runs(t, runFile) != 2 {
		t.Errorf("properties of a fresh build: %v", p)
	}
}

// distrobuilder's metadata.yaml: a folded description, and templates
// with properties of their own, which stay as they are.
func TestWithPropertiesOfADistrobuilderMetadata(t *testing.T) {
	in := "architecture: x86_64\nproperties:\n  architecture: amd64\n  description: PostgreSQL on port 5432, postgres password generated on first boot,\n    data on a volume\n  os: debian\ntemplates:\n  /etc/hostname:\n    when:\n    - create\n    properties: {}\n"
	props := map[string]string{relations.Provides: "postgresql:5432"}
	out, err := withProperties([]byte(in), props)
	if err != nil {
		t.Fatal(err)
	}
	var md struct{ Properties map[string]string }
	if err := yaml.Unmarshal(out, &md); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if md.Properties[relations.Provides] != "postgresql:5432" || !strings.HasSuffix(md.Properties["description"], "data on a volume") || !strings.HasSuffix(string(out), "    properties: {}\n") {
		t.Errorf("properties %v\n%s", md.Properties, out)
	}
	// Written again with none: back to what it was.
	if back, _ := withProperties(out, nil); string(back) != in {
		t.Errorf("removed again:\n%s", back)
	}
}
