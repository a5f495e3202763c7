package builder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/debian"
)

// fakeArchive offers fixed newest versions and counts its lookups.
type fakeArchive struct {
	newest  debian.Packages
	sources []debian.Source
}

func (f *fakeArchive) Newest(ctx context.Context, sources []debian.Source, arch string) (debian.Packages, error) {
	f.sources = sources
	return f.newest, nil
}

// Why a release rebuilds: never built; inputs changed; the archive has
// newer versions of installed packages (a forced rebuild); otherwise not
// at all.
func TestCheckStaleSaysWhy(t *testing.T) {
	a := web(t, validYAML)
	bin, _ := fakeDistrobuilder(t)
	target, opts := webAmd64(t.TempDir()), Options{Compression: "gzip-1", Distrobuilder: bin}
	archive := &fakeArchive{newest: debian.Packages{"nginx-light": "1.22.1-9", "libc6": "2.36-9+deb12u9", "unrelated": "9"}}
	check := func(wantRebuild, wantForce bool, wantReason string) *Staleness {
		t.Helper()
		st, err := CheckStale(context.Background(), a, target, opts, archive)
		if err != nil {
			t.Fatal(err)
		}
		if st.Rebuild != wantRebuild || st.Force != wantForce || !strings.Contains(strings.Join(st.Reasons, "; "), wantReason) {
			t.Errorf("CheckStale = %+v, want rebuild %v force %v reason %q", st, wantRebuild, wantForce, wantReason)
		}
		return st
	}
	check(true, false, "never built")
	if _, err := Container(context.Background(), a, target, opts); err != nil {
		t.Fatal(err)
	}
	check(false, false, "")
	if len(archive.sources) != 1 || archive.sources[0].URI != "http://deb.debian.org/debian" {
		t.Errorf("archive asked with the image's sources %v", archive.sources)
	}

	archive.newest["nginx-light"] = "1.22.1-9+deb12u1"
	st := check(true, true, "1 package update(s): nginx-light 1.22.1-9 → 1.22.1-9+deb12u1")
	if len(st.Upgrades) != 1 {
		t.Errorf("upgrades %v", st.Upgrades)
	}
	// An older version in the archive is no update.
	archive.newest["nginx-light"] = "1.22.0-1"
	check(false, false, "")
	// Without an archive, only the inputs count.
	if st, _ := CheckStale(context.Background(), a, target, opts, nil); st.Rebuild {
		t.Errorf("no archive: %+v", st)
	}

	os.WriteFile(filepath.Join(a.Dir, "files.txt"), []byte("new file"), 0o644)
	check(true, false, "inputs changed")
}

// A forced rebuild that installed the same package versions keeps the
// previous outputs (nothing new to publish); one with a new version
// replaces them.
func TestBuildKeepUnchanged(t *testing.T) {
	a := web(t, validYAML)
	bin, runFile := fakeDistrobuilder(t)
	target, opts := webAmd64(t.TempDir()), Options{Compression: "gzip-1", Distrobuilder: bin}
	first, err := Container(context.Background(), a, target, opts)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(first.Rootfs)
	opts.Force, opts.KeepUnchanged = true, true
	res, err := Container(context.Background(), a, target, opts)
	if err != nil || !res.Unchanged || runs(t, runFile) != 2 {
		t.Fatalf("rebuild with the same packages: %+v %v (%d runs)", res, err, runs(t, runFile))
	}
	if after, _ := os.Stat(res.Rootfs); !os.SameFile(before, after) {
		t.Error("the previous outputs were replaced")
	}
	os.WriteFile(filepath.Join(filepath.Dir(bin), "status"), []byte("Package: nginx-light\nStatus: install ok installed\nVersion: 1.22.1-9+deb12u1\n"), 0o644)
	res, err = Container(context.Background(), a, target, opts)
	if err != nil || res.Unchanged || res.Skipped {
		t.Fatalf("rebuild with a new package: %+v %v", res, err)
	}
	if p, _ := installedPackages(res.Dir); p["nginx-light"] != "1.22.1-9+deb12u1" {
		t.Errorf("packages after the update: %v", p)
	}
}
