package builder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/incus-appliance/registry/internal/image"
)

// A forced rebuild whose root comes out identical gives the identical
// metadata tarball (same creation date, so same version and fingerprint);
// a changed root gets distrobuilder's fresh date, so a new version.
func TestRebuildWithUnchangedRootKeepsTheImage(t *testing.T) {
	a := web(t, validYAML)
	bin, _ := fakeDistrobuilder(t)
	fakeDir := filepath.Dir(bin)
	target, opts := webAmd64(t.TempDir()), Options{Compression: "xz", Distrobuilder: bin, Force: true}
	inspect := func() *image.Image {
		t.Helper()
		res, err := Container(context.Background(), a, target, opts)
		if err != nil {
			t.Fatal(err)
		}
		im, err := image.Inspect(context.Background(), res.Metadata, res.Rootfs, image.Options{Arch: "amd64"})
		if err != nil {
			t.Fatal(err)
		}
		return im
	}
	first := inspect()
	again := inspect()
	if again.Fingerprint != first.Fingerprint || !again.Metadata.CreationDate.Equal(first.Metadata.CreationDate) {
		t.Fatalf("rebuild with an identical root: fingerprint %s created %v, want %s created %v", again.Fingerprint, again.Metadata.CreationDate, first.Fingerprint, first.Metadata.CreationDate)
	}
	os.WriteFile(filepath.Join(fakeDir, "rootchange"), []byte("a changed file"), 0o644)
	changed := inspect()
	if changed.Fingerprint == first.Fingerprint || !changed.Metadata.CreationDate.After(first.Metadata.CreationDate) {
		t.Fatalf("rebuild with a changed root: created %v (first %v), want a new image with a later date", changed.Metadata.CreationDate, first.Metadata.CreationDate)
	}
	if epoch, _ := os.ReadFile(filepath.Join(fakeDir, "epoch")); strings.TrimSpace(string(epoch)) != "1767225600" {
		t.Errorf("distrobuilder ran with SOURCE_DATE_EPOCH=%q", epoch)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	inspect()
	if epoch, _ := os.ReadFile(filepath.Join(fakeDir, "epoch")); strings.TrimSpace(string(epoch)) != "1700000000" {
		t.Errorf("SOURCE_DATE_EPOCH from the environment not passed on: %q", epoch)
	}
}

// distrobuilder gets the appliance's template with the cleanup action
// appended last, and a mksquashfs with the options it does not let a
// template set.
func TestBuildAppendsTheCleanupAction(t *testing.T) {
	a := web(t, validYAML)
	bin, _ := fakeDistrobuilder(t)
	if _, err := Container(context.Background(), a, webAmd64(t.TempDir()), Options{Distrobuilder: bin}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(bin), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Image   map[string]any `yaml:"image"`
		Actions []struct{ Trigger, Action string }
	}
	if err := yaml.Unmarshal(data, &tmpl); err != nil {
		t.Fatal(err)
	}
	n := len(tmpl.Actions)
	if n == 0 || tmpl.Actions[n-1].Trigger != "post-files" || !strings.Contains(tmpl.Actions[n-1].Action, "find /var/log -type f -delete") || tmpl.Image == nil {
		t.Errorf("template given to distrobuilder:\n%s", data)
	}
	// distrobuilder finds a mksquashfs that adds -no-fragments.
	if wrapper, _ := os.ReadFile(filepath.Join(filepath.Dir(bin), "mksquashfs")); !strings.Contains(string(wrapper), `"$@" -no-fragments`) {
		t.Errorf("mksquashfs on distrobuilder's PATH:\n%s", wrapper)
	}
}
