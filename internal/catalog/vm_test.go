package catalog

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// withVM gives the image a VM disk whose digests derive from seed.
func withVM(im Image, seed string) Image {
	im.VM = &VMDisk{Fingerprint: hexOf("vmfp" + seed), Disk: FileRef{SHA256: hexOf("disk" + seed), Size: 300 << 20}}
	return im
}

// A container root and a VM disk in one version: one metadata tarball
// carrying both combined hashes, two images Incus tells apart by type.
func TestContainerAndVMInOneVersion(t *testing.T) {
	c := New()
	mustAdd(t, c, withVM(img("nginx", "amd64", t0, "n1"), "n1"))
	golden(t, "container-and-vm.json", c.Marshal())
	v := c.Products["nginx:amd64"].Versions[VersionKey(t0)]
	meta := v.Items[FTypeIncusMeta]
	if meta.CombinedSquashfsSHA256 != hexOf("fpn1") || meta.CombinedDiskKVMImgSHA256 != hexOf("vmfpn1") {
		t.Errorf("metadata item %+v lacks a combined hash", meta)
	}
	var kinds []string
	for _, vi := range v.Images() {
		kinds = append(kinds, string(vi.Kind)+"="+vi.Fingerprint[:8])
	}
	if want := []string{"qcow2=" + hexOf("vmfpn1")[:8], "squashfs=" + hexOf("fpn1")[:8]}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("images %v, want %v", kinds, want)
	}
	types := map[string]string{}
	for _, e := range c.Entries() {
		types[e.Type] = e.Fingerprint
	}
	if types["container"] != hexOf("fpn1") || types["virtual-machine"] != hexOf("vmfpn1") {
		t.Errorf("entries by type %v", types)
	}
	if p := c.Problems(); len(p) > 0 {
		t.Errorf("problems: %v", p)
	}
}

// The disk built after the container was published joins its version;
// the same again changes nothing; another disk for it is refused.
func TestVMAddedToPublishedVersion(t *testing.T) {
	c := New()
	mustAdd(t, c, img("nginx", "amd64", t0, "n1"))
	before := string(c.Marshal())
	r := mustAdd(t, c, withVM(img("nginx", "amd64", t0, "n1"), "n1"))
	if !r.VMAdded || r.VersionAdded || !r.Changed() {
		t.Errorf("adding the disk: %+v", r)
	}
	if after := string(c.Marshal()); !strings.Contains(after, `"disk-kvm.img"`) || after == before {
		t.Error("the version did not get the disk")
	}
	if r := mustAdd(t, c, withVM(img("nginx", "amd64", t0, "n1"), "n1")); r.Changed() {
		t.Errorf("the same again changed the catalog: %+v", r)
	}
	snapshot := string(c.Marshal())
	if _, err := c.Add(withVM(img("nginx", "amd64", t0, "n1"), "other")); err == nil || !strings.Contains(err.Error(), "different content") {
		t.Errorf("another disk for the version: err %v", err)
	}
	if string(c.Marshal()) != snapshot {
		t.Error("a refused Add changed the catalog")
	}
}

func TestBadVMDisk(t *testing.T) {
	bad := withVM(img("nginx", "amd64", t0, "n1"), "n1")
	bad.VM.Disk.SHA256 = "nope"
	same := withVM(img("nginx", "amd64", t0, "n1"), "n1")
	same.VM.Fingerprint = same.Fingerprint
	twice := withVM(img("nginx", "amd64", t0, "n1"), "n1")
	twice.RootKind = RootQCOW2
	for _, im := range []Image{bad, same, twice} {
		if _, err := New().Add(im); err == nil {
			t.Errorf("Add accepted %+v", im.VM)
		}
	}
}

// The cloud variant is its own product, NAME/VARIANT, beside the default
// one: its aliases end in /cloud and do not collide with the default's.
func TestCloudVariantProduct(t *testing.T) {
	c := New()
	mustAdd(t, c, img("nginx", "amd64", t0, "n1", "web"))
	cloud := img("nginx", "amd64", t0, "c1", "web")
	cloud.ApplianceVariant, cloud.Variant = "cloud", "cloud"
	r := mustAdd(t, c, cloud)
	if r.Product != "nginx/cloud:amd64" {
		t.Errorf("product %q", r.Product)
	}
	if got := c.Products["nginx/cloud:amd64"].Aliases; got != "nginx/cloud,web/cloud" {
		t.Errorf("cloud aliases %q", got)
	}
	if got := c.Products["nginx:amd64"].Aliases; got != "nginx,web" {
		t.Errorf("default aliases %q", got)
	}
	if p := c.Problems(); len(p) > 0 {
		t.Errorf("problems: %v", p)
	}
	for _, v := range []string{"amd64", "Bad", "x/y"} {
		bad := cloud
		bad.ApplianceVariant = v
		if _, err := New().Add(bad); err == nil {
			t.Errorf("variant %q accepted", v)
		}
	}
}

// A disk added to a version that has a squashfs delta keeps the delta,
// and gets none of its own.
func TestVMAddedKeepsTheDelta(t *testing.T) {
	c := New()
	mustAdd(t, c, img("nginx", "amd64", t0, "n1"))
	v2 := img("nginx", "amd64", t0.Add(time.Hour), "n2")
	withDelta := v2
	withDelta.Deltas = []Delta{{Base: VersionKey(t0), BaseFingerprint: hexOf("fpn1"), File: FileRef{SHA256: hexOf("d"), Size: 10}}}
	mustAdd(t, c, withDelta)
	if r := mustAdd(t, c, withVM(v2, "n2")); !r.VMAdded {
		t.Fatalf("disk not added: %+v", r)
	}
	v := c.Products["nginx:amd64"].Versions[VersionKey(t0.Add(time.Hour))]
	deltas := 0
	for _, it := range v.Items {
		if it.DeltaBase != "" {
			deltas++
			if it.FType != FTypeSquashfsDelta {
				t.Errorf("delta item %+v", it)
			}
		}
	}
	if deltas != 1 || v.Items["disk-kvm.img"].Path == "" {
		t.Errorf("version items %v", v.Items)
	}
	if p := c.Problems(); len(p) > 0 {
		t.Errorf("problems: %v", p)
	}
}

// withVMDelta gives the image's VM disk one more delta, from the VM image
// of the version of base, naming base's anchor (or, with version, that
// key) as delta_base.
func withVMDelta(im, base Image, key string) Image {
	vm := *im.VM
	vm.Deltas = append(slices.Clone(vm.Deltas), Delta{Base: key, BaseFingerprint: base.VM.Fingerprint, File: FileRef{SHA256: hexOf("vmdelta" + key), Size: 4096}})
	im.VM = &vm
	return im
}

// VM deltas: each version with a VM image gets an anchor, K-vm, whose
// metadata names the VM image in combined_squashfs_sha256 (where Incus
// looks for any delta's base); a VM delta names the anchor, never the
// version (whose field names the container image). Anchors are not
// versions: no image, not counted by prune, gone with their version.
func TestVMDeltasNameTheAnchor(t *testing.T) {
	a := withVM(img("nginx", "amd64", t0, "a"), "a")
	ka := VersionKey(t0)
	b := withVMDelta(withDelta(withVM(img("nginx", "amd64", t0.Add(time.Hour), "b"), "b"), a, "ab"), a, anchorKey(ka))
	c := New()
	mustAdd(t, c, a)
	before := string(c.Marshal())
	// A container image given a delta from a VM image.
	noVM := img("nginx", "amd64", t0.Add(time.Hour), "b")
	noVM.Deltas = []Delta{{Base: anchorKey(ka), BaseFingerprint: a.VM.Fingerprint, File: FileRef{SHA256: hexOf("x"), Size: 1}}}
	for _, bad := range []Image{
		withVMDelta(withVM(img("nginx", "amd64", t0.Add(time.Hour), "b"), "b"), a, ka), // the version: Incus would take the container image
		noVM,
	} {
		if _, err := c.Add(bad); err == nil {
			t.Errorf("Add accepted deltas %+v, VM %+v", bad.Deltas, bad.VM)
		}
	}
	if string(c.Marshal()) != before {
		t.Fatal("a refused Add changed the catalog")
	}
	mustAdd(t, c, b)
	p := c.Products["nginx:amd64"]
	kb := VersionKey(b.Created)
	if got := p.VersionKeys(); !reflect.DeepEqual(got, []string{ka, kb}) {
		t.Errorf("VersionKeys = %v", got)
	}
	// What Incus reads: the VM delta's delta_base resolves, through the
	// first incus.tar.xz item of that version, to a's VM image.
	vmDelta := p.Versions[kb].Items["delta-"+anchorKey(ka)]
	if vmDelta.FType != FTypeDiskDelta || vmDelta.DeltaBase != anchorKey(ka) {
		t.Fatalf("VM delta item %+v", vmDelta)
	}
	if got := p.Versions[vmDelta.DeltaBase].Items[FTypeIncusMeta].CombinedSquashfsSHA256; got != a.VM.Fingerprint {
		t.Errorf("Incus resolves the VM delta's base to %s, want a's VM image %s", got, a.VM.Fingerprint)
	}
	if got := p.Versions[kb].Items["delta-"+ka]; got.FType != FTypeSquashfsDelta || p.Versions[got.DeltaBase].Items[FTypeIncusMeta].CombinedSquashfsSHA256 != a.Fingerprint {
		t.Errorf("the container delta %+v does not resolve to a's container image", got)
	}
	if n := len(c.Entries()); n != 4 {
		t.Errorf("%d entries, want 2 containers and 2 VMs (anchors are no images)", n)
	}
	if bs := c.DeltaBases("nginx:amd64", VersionKey(t0.Add(2*time.Hour)), RootQCOW2, 3); len(bs) != 2 || bs[0].Version != anchorKey(kb) || bs[1].Image.Fingerprint != a.VM.Fingerprint {
		t.Errorf("VM delta bases %+v", bs)
	}
	if prob := c.Problems(); len(prob) > 0 {
		t.Fatalf("problems: %q", prob)
	}
	// Keeping one version drops a, its anchor and both of b's deltas.
	if _, err := c.KeepNewest(1, t0.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(p.Versions)); !reflect.DeepEqual(got, []string{kb, anchorKey(kb)}) || len(p.Versions[kb].Deltas()) != 0 {
		t.Errorf("after KeepNewest(1): versions %v, deltas %v", got, p.Versions[kb].Deltas())
	}
	if prob := c.Problems(); len(prob) > 0 {
		t.Errorf("problems: %q", prob)
	}
	// Removing the last version leaves no anchor behind.
	if _, err := c.Remove(b.Fingerprint, "", t0.Add(6*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(c.Products) != 0 {
		t.Errorf("products left: %v", c.Products)
	}
}

// A mirror carries VM deltas: Copies lists each version's anchor right
// after it, and merging the copies into an empty catalog gives the same
// catalog, VM deltas and anchors included.
func TestCopiesCarryVMDeltaAnchors(t *testing.T) {
	a := withVM(img("nginx", "amd64", t0, "a"), "a")
	b := withVMDelta(withVM(img("nginx", "amd64", t0.Add(time.Hour), "b"), "b"), a, anchorKey(VersionKey(t0)))
	c := New()
	mustAdd(t, c, a)
	mustAdd(t, c, b)
	var keys []string
	for _, vc := range c.Copies() {
		keys = append(keys, vc.Version)
	}
	ka, kb := VersionKey(t0), VersionKey(b.Created)
	if want := []string{ka, anchorKey(ka), kb, anchorKey(kb)}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("copies %v, want %v", keys, want)
	}
	m := New()
	res, errs := m.MergeAll(c.Copies(), Merger{Writer: WriterPublish})
	for i, err := range errs {
		if err != nil || len(res[i].DroppedDeltas) > 0 {
			t.Fatalf("copy %s: %v, dropped %v", keys[i], err, res[i].DroppedDeltas)
		}
	}
	if !reflect.DeepEqual(m.Products, c.Products) {
		t.Errorf("merged products differ:\n%s\nwant\n%s", m.Marshal(), c.Marshal())
	}
	if p := m.Products["nginx:amd64"]; p.VersionOf(anchorKey(ka)) != ka || p.VersionOf(kb) != kb {
		t.Errorf("VersionOf")
	}
}
