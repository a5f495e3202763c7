package registry

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/delta/deltatest"
)

// A version with a container root and a VM disk: both uploaded, listed
// with their types, verified (the disk's combined hash too); damage to
// the disk or its combined hash is found; prune treats the disk like any
// root.
func TestPublishVerifyPruneVMDisk(t *testing.T) {
	s := newScene(t)
	ctx, r, fs := s.ctx, s.r, s.fs
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
	s.replace(old.Image.VM.Path(), []byte(strings.Repeat("x", len(saved))))
	if rep := s.verifyWith(VerifyOptions{}); rep.OK() || !strings.Contains(problems(rep), "disk.qcow2 has sha256") {
		t.Errorf("damaged disk: problems %q", rep.Problems)
	}
	s.replace(old.Image.VM.Path(), []byte(saved))
	rewriteCatalog(t, fs.Store, func(js string) string {
		return strings.ReplaceAll(js, `"combined_disk-kvm-img_sha256": "`+old.Image.VM.Fingerprint, `"combined_disk-kvm-img_sha256": "`+strings.Repeat("b", 64))
	})
	if rep := s.verifyWith(VerifyOptions{}); rep.OK() || !strings.Contains(problems(rep), "disk.qcow2") {
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
	// Deltas: the VM disk gets one naming the old version's anchor (whose
	// incus.tar.xz names the old VM image, where Incus looks for any
	// delta's base); verify --deep decodes it. (The two squashfs roots are
	// unrelated random bytes: their delta is skipped as too big.)
	p := readCatalog(t, r).Products["nginx:amd64"]
	ko := catalog.VersionKey(t0)
	got := map[string]string{}
	for _, it := range p.Versions[catalog.VersionKey(newer.Image.Created)].Items {
		if it.DeltaBase != "" {
			got[it.FType] = it.DeltaBase
		}
	}
	if want := map[string]string{catalog.FTypeDiskDelta: ko + "-vm"}; !reflect.DeepEqual(got, want) {
		t.Errorf("deltas by ftype %v, want %v", got, want)
	}
	if a := p.Versions[ko+"-vm"]; a == nil || a.Items[catalog.FTypeIncusMeta].CombinedSquashfsSHA256 != old.Image.VM.Fingerprint {
		t.Errorf("the old version's anchor %+v does not name its VM image", a)
	}
	if rep := s.verifyWith(VerifyOptions{Deep: true}); !rep.OK() || rep.DeltasDecoded != 1 {
		t.Errorf("verify --deep: %d deltas decoded, problems %q", rep.DeltasDecoded, rep.Problems)
	}
	now := time.Now()
	s.at(func() time.Time { return now })
	s.prune(PruneOptions{Keep: 1, Grace: DefaultGrace})
	s.at(func() time.Time { return now.Add(DefaultGrace + time.Minute) })
	pr := s.prune(PruneOptions{Grace: DefaultGrace})
	for _, p := range old.Image.Paths() {
		if !slices.Contains(pr.Deleted, p) {
			t.Errorf("prune deleted %v, not the old version's %s", pr.Deleted, p)
		}
	}
	if !s.stored(newer.Image.VM.Path()) {
		t.Errorf("the current disk is gone")
	}
	mustVerify(t, r)
}

// The disk built after the container was published joins its version:
// only the disk is uploaded.
func TestPublishVMDiskLater(t *testing.T) {
	s := newScene(t)
	r := s.r
	req := s.publish("nginx", t0, 1)
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
	s := newScene(t)
	r := s.r
	s.publish("nginx", t0, 1)
	cloud := func(created time.Time, seed int64) PublishRequest {
		req := makeImage(t, "nginx", created, seed)
		req.Image.ApplianceVariant, req.Image.Variant = "cloud", "cloud"
		return req
	}
	res := mustPublish(t, r, cloud(t0.Add(time.Hour), 2))
	if res.Product != "nginx/cloud:amd64" || res.Deltas != nil {
		t.Errorf("first cloud version: product %s, deltas %+v", res.Product, res.Deltas)
	}
	res = mustPublish(t, r, cloud(t0.Add(2*time.Hour), 3))
	if len(res.Deltas) != 1 || res.Deltas[0].Base != catalog.VersionKey(t0.Add(time.Hour)) {
		t.Errorf("second cloud version: deltas %+v, want one from the first cloud version", res.Deltas)
	}
	mustVerify(t, r)
}

// A version line's product (NAME:LINE:ARCH, and NAME/VARIANT:LINE:ARCH):
// its next version takes a delta from the line's previous one.
func TestLineProductDeltas(t *testing.T) {
	deltatest.Require(t)
	r := newScene(t).r
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
		if res.Product != want || res.Deltas != nil {
			t.Errorf("%s: first version: product %s, deltas %+v", v, res.Product, res.Deltas)
		}
		res = mustPublish(t, r, line(v, created.Add(time.Hour), int64(20+i)))
		if len(res.Deltas) != 1 || res.Deltas[0].Base != catalog.VersionKey(created) {
			t.Errorf("%s: second version: deltas %+v, want one from the line's first version", v, res.Deltas)
		}
	}
	mustVerify(t, r)
}

// In a registry of several catalog files, a VM disk another product (in
// another file) already published is refused, naming that product: a
// fingerprint is published once, the disk's too.
func TestShardedRefusesAVMDiskPublishedElsewhere(t *testing.T) {
	r := newSceneOf(t, 8).r
	first := withVMDisk(t, makeImage(t, "nginx", t0, 1), 1)
	mustPublish(t, r, first)
	_, other := twoFiles(8, "nginx")
	second := makeImage(t, other, t0, 2)
	second.Image.VM, second.VMDiskPath = first.Image.VM, first.VMDiskPath
	_, err := r.Publish(context.Background(), second)
	if err == nil || !strings.Contains(err.Error(), first.Image.VM.Fingerprint) || !strings.Contains(err.Error(), `"nginx:amd64"`) {
		t.Errorf("publishing nginx's VM disk as %s: %v, want a refusal naming nginx:amd64", other, err)
	}
	mustVerify(t, r)
}
