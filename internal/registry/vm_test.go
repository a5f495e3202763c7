package registry

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/delta/deltatest"
	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/memstore"
)

// withVMDisk adds a VM disk (a qcow2 header padded with seed bytes) to
// req, sharing its metadata tarball.
func withVMDisk(t testing.TB, req PublishRequest, seed byte) PublishRequest {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "disk.qcow2")
	b := make([]byte, 64<<10)
	copy(b, "QFI\xfb\x00\x00\x00\x03")
	b[len(b)-1] = seed
	if err := os.WriteFile(disk, b, 0o644); err != nil {
		t.Fatal(err)
	}
	im, err := image.Inspect(context.Background(), req.MetadataPath, disk, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if im.RootKind != catalog.RootQCOW2 {
		t.Fatalf("disk inspected as %s", im.RootKind)
	}
	req.Image.VM = &catalog.VMDisk{Fingerprint: im.Fingerprint, Disk: catalog.FileRef{SHA256: im.Root.SHA256, Size: im.Root.Size}}
	req.VMDiskPath = disk
	return req
}

// A version with a container root and a VM disk: both uploaded, listed
// with their types, verified (the disk's combined hash too); damage to
// the disk or its combined hash is found; prune treats the disk like any
// root.
func TestPublishVerifyPruneVMDisk(t *testing.T) {
	ctx := context.Background()
	r, fs := newTestRegistry()
	old := withVMDisk(t, makeImage(t, "nginx", t0, 1), 1)
	res := mustPublish(t, r, old)
	if len(res.Files) != 3 || res.Files[2].Path != old.Image.VM.Path() || !res.Files[2].Uploaded {
		t.Fatalf("files %+v", res.Files)
	}
	rep := mustVerify(t, r)
	if rep.Images != 2 {
		t.Errorf("verify checked %d images, want 2 (container and VM)", rep.Images)
	}
	entries, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, e := range entries {
		types[e.Type] = e.Fingerprint
	}
	if types["container"] != old.Image.Fingerprint || types["virtual-machine"] != old.Image.VM.Fingerprint {
		t.Errorf("list by type %v", types)
	}

	// Damage: other bytes in the disk; a wrong combined hash.
	saved := storeContents(t, fs.Store)[old.Image.VM.Path()]
	fs.Store.Delete(ctx, old.Image.VM.Path())
	fs.Store.Put(ctx, old.Image.VM.Path(), strings.NewReader(strings.Repeat("x", len(saved))), int64(len(saved)), store.PutOptions{})
	if rep, _ := r.Verify(ctx); rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "disk.qcow2 has sha256") {
		t.Errorf("damaged disk: problems %q", rep.Problems)
	}
	fs.Store.Delete(ctx, old.Image.VM.Path())
	fs.Store.Put(ctx, old.Image.VM.Path(), strings.NewReader(saved), int64(len(saved)), store.PutOptions{})
	rewriteCatalog(t, fs.Store, func(js string) string {
		return strings.ReplaceAll(js, `"combined_disk-kvm-img_sha256": "`+old.Image.VM.Fingerprint, `"combined_disk-kvm-img_sha256": "`+strings.Repeat("b", 64))
	})
	if rep, _ := r.Verify(ctx); rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "disk.qcow2") {
		t.Errorf("wrong VM combined hash: problems %q", rep.Problems)
	}
	rewriteCatalog(t, fs.Store, func(js string) string {
		return strings.ReplaceAll(js, `"combined_disk-kvm-img_sha256": "`+strings.Repeat("b", 64), `"combined_disk-kvm-img_sha256": "`+old.Image.VM.Fingerprint)
	})
	mustVerify(t, r)

	// A newer version; keep 1: the old version's three files go after the
	// grace period, the new disk stays.
	newer := withVMDisk(t, makeImage(t, "nginx", t0.Add(time.Hour), 2), 2)
	mustPublish(t, r, newer)
	// Deltas: the squashfs root gets one, the VM disk never does.
	for _, v := range readCatalog(t, r).Products["nginx:amd64"].Versions {
		for k, it := range v.Items {
			if it.DeltaBase != "" && it.FType != catalog.FTypeSquashfsDelta || strings.Contains(it.FType, "disk-kvm.img.") {
				t.Errorf("item %s: %+v: only squashfs roots get deltas", k, it)
			}
		}
	}
	now := time.Now()
	r.Now = func() time.Time { return now }
	if _, err := r.Prune(ctx, PruneOptions{Keep: 1, Grace: DefaultGrace}); err != nil {
		t.Fatal(err)
	}
	r.Now = func() time.Time { return now.Add(DefaultGrace + time.Minute) }
	pr, err := r.Prune(ctx, PruneOptions{Grace: DefaultGrace})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range old.Image.Paths() {
		if !slices.Contains(pr.Deleted, p) {
			t.Errorf("prune deleted %v, not the old version's %s", pr.Deleted, p)
		}
	}
	if _, err := fs.Store.Stat(ctx, newer.Image.VM.Path()); err != nil {
		t.Errorf("the current disk is gone: %v", err)
	}
	mustVerify(t, r)
}

// The disk built after the container was published joins its version:
// only the disk is uploaded.
func TestPublishVMDiskLater(t *testing.T) {
	r, _ := newTestRegistry()
	req := makeImage(t, "nginx", t0, 1)
	mustPublish(t, r, req)
	res := mustPublish(t, r, withVMDisk(t, req, 1))
	uploaded := 0
	for _, f := range res.Files {
		if f.Uploaded {
			uploaded++
		}
	}
	if !res.Changed || uploaded != 1 {
		t.Errorf("adding the disk: changed %v, %d files uploaded (%+v)", res.Changed, uploaded, res.Files)
	}
	if rep := mustVerify(t, r); rep.Images != 2 {
		t.Errorf("%d images", rep.Images)
	}
}

// The cloud variant is its own product: its first version takes no delta
// from the default variant's, its second one a delta from its first.
func TestCloudVariantProductAndDeltas(t *testing.T) {
	deltatest.Require(t)
	r, _ := newTestRegistry()
	mustPublish(t, r, makeImage(t, "nginx", t0, 1))
	cloud := func(created time.Time, seed int64) PublishRequest {
		req := makeImage(t, "nginx", created, seed)
		req.Image.ApplianceVariant, req.Image.Variant = "cloud", "cloud"
		return req
	}
	res := mustPublish(t, r, cloud(t0.Add(time.Hour), 2))
	if res.Product != "nginx/cloud:amd64" || res.Delta != nil {
		t.Errorf("first cloud version: product %s, delta %+v", res.Product, res.Delta)
	}
	res = mustPublish(t, r, cloud(t0.Add(2*time.Hour), 3))
	if res.Delta == nil || res.Delta.Base != catalog.VersionKey(t0.Add(time.Hour)) {
		t.Errorf("second cloud version: delta %+v, want one from the first cloud version", res.Delta)
	}
	mustVerify(t, r)
}

// A version line's product (NAME:LINE:ARCH, and NAME/VARIANT:LINE:ARCH):
// its next version takes a delta from the line's previous one.
func TestLineProductDeltas(t *testing.T) {
	deltatest.Require(t)
	r, _ := newTestRegistry()
	line := func(variant string, created time.Time, seed int64) PublishRequest {
		req := makeImage(t, "nginx", created, seed)
		req.Image.ApplianceVersion, req.Image.Line = "1.2.0", "1.2"
		req.Image.ApplianceVariant = variant
		return req
	}
	for i, v := range []string{"default", "cloud"} {
		created := t0.Add(time.Duration(i) * time.Minute)
		res := mustPublish(t, r, line(v, created, int64(10+i)))
		want := map[string]string{"default": "nginx:1.2:amd64", "cloud": "nginx/cloud:1.2:amd64"}[v]
		if res.Product != want || res.Delta != nil {
			t.Errorf("%s: first version: product %s, delta %+v", v, res.Product, res.Delta)
		}
		res = mustPublish(t, r, line(v, created.Add(time.Hour), int64(20+i)))
		if res.Delta == nil || res.Delta.Base != catalog.VersionKey(created) {
			t.Errorf("%s: second version: delta %+v, want one from the line's first version", v, res.Delta)
		}
	}
	mustVerify(t, r)
}

// In a registry of several catalog files, a VM disk another product (in
// another file) already published is refused, naming that product: a
// fingerprint is published once, the disk's too.
func TestShardedRefusesAVMDiskPublishedElsewhere(t *testing.T) {
	r := &Registry{Store: memstore.New(), BackoffBase: time.Millisecond, Shards: 8}
	first := withVMDisk(t, makeImage(t, "nginx", t0, 1), 1)
	mustPublish(t, r, first)
	other := ""
	for _, n := range []string{"web", "redis", "unbound", "postgresql", "mosquitto", "node-exporter"} {
		if catalog.Layout(8).FileOf(catalog.ProductKey(n, "amd64")) != catalog.Layout(8).FileOf(catalog.ProductKey("nginx", "amd64")) {
			other = n
			break
		}
	}
	second := makeImage(t, other, t0, 2)
	second.Image.VM, second.VMDiskPath = first.Image.VM, first.VMDiskPath
	_, err := r.Publish(context.Background(), second)
	if err == nil || !strings.Contains(err.Error(), first.Image.VM.Fingerprint) || !strings.Contains(err.Error(), `"nginx:amd64"`) {
		t.Errorf("publishing nginx's VM disk as %s: %v, want a refusal naming nginx:amd64", other, err)
	}
	mustVerify(t, r)
}
