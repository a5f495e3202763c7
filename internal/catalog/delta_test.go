package catalog

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// withDelta returns im with one more delta, from the version of base (an
// image already added).
func withDelta(im Image, base Image, seed string) Image {
	im.Deltas = append(slices.Clone(im.Deltas), Delta{Base: VersionKey(base.Created), BaseFingerprint: base.Fingerprint, File: FileRef{SHA256: hexOf("delta" + seed), Size: 123456}})
	return im
}

func TestGoldenDeltas(t *testing.T) {
	a := img("nginx", "amd64", t0, "a")
	b := withDelta(img("nginx", "amd64", t0.Add(time.Hour), "b"), a, "ab")
	c := withDelta(img("nginx", "amd64", t0.Add(2*time.Hour), "c"), b, "bc")
	for _, tt := range []struct {
		name string
		ops  func(t *testing.T, cat *Catalog)
	}{
		{"delta.json", func(t *testing.T, cat *Catalog) {
			mustAdd(t, cat, a)
			if r := mustAdd(t, cat, b); !r.DeltaAdded {
				t.Errorf("Add = %+v, want DeltaAdded", r)
			}
		}},
		// Keeping the newest 2 drops a, and b's delta from a with it (its
		// file retired); c's delta from b stays.
		{"keep-newest-drops-deltas.json", func(t *testing.T, cat *Catalog) {
			mustAdd(t, cat, a)
			mustAdd(t, cat, b)
			mustAdd(t, cat, c)
			if _, err := cat.KeepNewest(2, t0.Add(5*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}},
		// Removing b (by fingerprint) drops b and c's delta from b.
		{"remove-delta-base.json", func(t *testing.T, cat *Catalog) {
			mustAdd(t, cat, a)
			mustAdd(t, cat, b)
			mustAdd(t, cat, c)
			if _, err := cat.Remove(b.Fingerprint, "", t0.Add(5*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			back := checkGolden(t, tt.name, tt.ops)
			// No delta names a version that is not there.
			for pk, p := range back.Products {
				for vk, v := range p.Versions {
					for k, it := range v.Deltas() {
						if p.Versions[it.DeltaBase] == nil {
							t.Errorf("%s %s %s: delta_base %s is gone", pk, vk, k, it.DeltaBase)
						}
					}
				}
			}
		})
	}
}

func TestDeltaRules(t *testing.T) {
	a := img("nginx", "amd64", t0, "a")
	b := img("nginx", "amd64", t0.Add(time.Hour), "b")
	cat := New()
	mustAdd(t, cat, a)
	before := string(cat.Marshal())
	tarB := b
	tarB.RootKind = RootTarXZ
	other := img("redis", "amd64", t0, "r")
	for _, tc := range []struct {
		name string
		im   Image
		want string
	}{
		{"base not there", withDelta(b, img("nginx", "amd64", t0.Add(-time.Hour), "z"), "x"), "names a version that nginx:amd64 does not have"},
		{"base not older", withDelta(img("nginx", "amd64", t0.Add(-time.Hour), "old"), a, "x"), "is not older than version"},
		{"base of another image", withDelta(b, other, "x"), "is not the squashfs image"},
		{"wrong base fingerprint", func() Image { im := withDelta(b, a, "x"); im.Deltas[0].BaseFingerprint = hexOf("other"); return im }(), "is not the squashfs image"},
		{"tar.xz root", withDelta(tarB, a, "x"), "needs a squashfs root"},
		{"bad digest", func() Image { im := withDelta(b, a, "x"); im.Deltas[0].File.SHA256 = "abc"; return im }(), "64 lowercase hex"},
		{"new product", withDelta(img("web", "amd64", t0.Add(time.Hour), "w"), a, "x"), "names a version that web:amd64 does not have"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cat.Add(tc.im)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Add = %v, want one line containing %q", err, tc.want)
			}
			if string(cat.Marshal()) != before {
				t.Error("a refused Add changed the catalog")
			}
		})
	}

	// A published version never changes: the same image again with another
	// delta (another publisher's encoding) is a no-op, and keeps the delta
	// listed first.
	first := withDelta(b, a, "first")
	mustAdd(t, cat, first)
	after := string(cat.Marshal())
	if r := mustAdd(t, cat, withDelta(b, a, "second")); r.Changed() || r.DeltaAdded {
		t.Errorf("re-adding with another delta = %+v, want no change", r)
	}
	if r := mustAdd(t, cat, b); r.Changed() {
		t.Errorf("re-adding without a delta = %+v, want no change", r)
	}
	if string(cat.Marshal()) != after {
		t.Error("re-adding changed the catalog")
	}
	if !strings.Contains(after, first.Paths()[2]) || !strings.Contains(after, `"delta_base": "`+VersionKey(t0)+`"`) {
		t.Errorf("catalog lacks the delta item:\n%s", after)
	}
}

func TestDeltaBasesAreTheNewestSquashfsVersions(t *testing.T) {
	cat := New()
	if bs := cat.DeltaBases("nginx:amd64", VersionKey(t0), RootSquashfs, 3); len(bs) != 0 {
		t.Error("a new product has a delta base")
	}
	a := img("nginx", "amd64", t0, "a")
	b := img("nginx", "amd64", t0.Add(2*time.Hour), "b")
	mustAdd(t, cat, a)
	mustAdd(t, cat, b)
	versions := func(bs []DeltaBase) string {
		var out []string
		for _, b := range bs {
			if b.Image.Kind != RootSquashfs {
				t.Errorf("base %s is %s", b.Version, b.Image.Kind)
			}
			out = append(out, b.Version)
		}
		return strings.Join(out, " ")
	}
	ka, kb := VersionKey(a.Created), VersionKey(b.Created)
	for _, tc := range []struct {
		vk    string
		depth int
		want  string
	}{
		{VersionKey(t0.Add(3 * time.Hour)), 3, kb + " " + ka},
		{VersionKey(t0.Add(3 * time.Hour)), 1, kb},
		{VersionKey(t0.Add(3 * time.Hour)), 0, ""},
		{VersionKey(t0.Add(time.Hour)), 3, ka}, // an older build published late
		{VersionKey(t0.Add(-time.Hour)), 3, ""},
	} {
		if got := versions(cat.DeltaBases("nginx:amd64", tc.vk, RootSquashfs, tc.depth)); got != tc.want {
			t.Errorf("DeltaBases(%s, depth %d) = %q, want %q", tc.vk, tc.depth, got, tc.want)
		}
	}
	// A tar.xz version in between is skipped: the squashfs versions
	// before it are still bases.
	c := img("nginx", "amd64", t0.Add(3*time.Hour), "c")
	c.RootKind = RootTarXZ
	mustAdd(t, cat, c)
	if got := versions(cat.DeltaBases("nginx:amd64", VersionKey(t0.Add(4*time.Hour)), RootSquashfs, 3)); got != kb+" "+ka {
		t.Errorf("DeltaBases after a tar.xz version = %q, want %q", got, kb+" "+ka)
	}
	if bs := cat.DeltaBases("nginx:amd64", VersionKey(t0.Add(4*time.Hour)), RootTarXZ, 3); len(bs) != 0 {
		t.Errorf("a tar.xz root has delta bases %v: Incus applies no delta to it", bs)
	}
}

// Several deltas per version: one from each of the last versions, each
// dropped with its base (prune, remove), the others staying.
func TestSeveralDeltasPerVersion(t *testing.T) {
	a := img("nginx", "amd64", t0, "a")
	b := withDelta(img("nginx", "amd64", t0.Add(time.Hour), "b"), a, "ab")
	c := withDelta(withDelta(img("nginx", "amd64", t0.Add(2*time.Hour), "c"), b, "bc"), a, "ac")
	cat := New()
	mustAdd(t, cat, a)
	mustAdd(t, cat, b)
	if r := mustAdd(t, cat, c); !r.DeltaAdded {
		t.Fatalf("Add = %+v, want DeltaAdded", r)
	}
	deltaBases := func() map[string]string {
		out := map[string]string{}
		for vk, v := range cat.Products["nginx:amd64"].Versions {
			var bs []string
			for _, it := range v.Deltas() {
				bs = append(bs, it.DeltaBase)
			}
			slices.Sort(bs)
			out[vk] = strings.Join(bs, " ")
		}
		return out
	}
	ka, kb, kc := VersionKey(a.Created), VersionKey(b.Created), VersionKey(c.Created)
	if got := deltaBases(); got[kc] != ka+" "+kb || got[kb] != ka || got[ka] != "" {
		t.Fatalf("delta bases %v", got)
	}
	if p := cat.Problems(); len(p) > 0 {
		t.Fatalf("problems: %q", p)
	}
	// The same image again with other deltas changes nothing.
	if r := mustAdd(t, cat, withDelta(img("nginx", "amd64", t0.Add(2*time.Hour), "c"), b, "other")); r.Changed() {
		t.Errorf("re-adding with other deltas = %+v", r)
	}
	before := string(cat.Marshal())
	for _, bad := range []Image{
		withDelta(withDelta(img("nginx", "amd64", t0.Add(3*time.Hour), "d"), c, "cd"), c, "cd2"),
		withDelta(withDelta(img("nginx", "amd64", t0.Add(3*time.Hour), "d"), c, "cd"), img("nginx", "amd64", t0.Add(-time.Hour), "z"), "zd"),
	} {
		if _, err := cat.Add(bad); err == nil {
			t.Errorf("Add accepted deltas %+v", bad.Deltas)
		}
	}
	if string(cat.Marshal()) != before {
		t.Error("a refused Add changed the catalog")
	}
	// KeepNewest(2) drops a, and c's delta from a with it; c's from b stays.
	if _, err := cat.KeepNewest(2, t0.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := deltaBases(); got[kc] != kb || got[kb] != "" || len(got) != 2 {
		t.Errorf("after KeepNewest(2): delta bases %v", got)
	}
	if p := cat.Problems(); len(p) > 0 {
		t.Errorf("problems: %q", p)
	}
}

func TestProblemsFindsADeltaWhoseBaseIsGone(t *testing.T) {
	a := img("nginx", "amd64", t0, "a")
	cat := New()
	mustAdd(t, cat, a)
	mustAdd(t, cat, withDelta(img("nginx", "amd64", t0.Add(time.Hour), "b"), a, "ab"))
	// A hand edit (or a tool that knows nothing of deltas) removed a.
	delete(cat.Products["nginx:amd64"].Versions, VersionKey(t0))
	cat.RecordCommit("ours", t0) // our own catalog: a problem
	p := cat.Problems()
	if len(p) != 1 || !strings.Contains(p[0], "delta_base "+VersionKey(t0)+" names a version that is not in the catalog") {
		t.Errorf("Problems() = %q", p)
	}
	// Written by another tool (no registry_state): Incus ignores such a
	// delta, so a warning, and prune drops it.
	cat.State = nil
	if p := cat.Problems(); len(p) != 0 {
		t.Errorf("foreign catalog: Problems() = %q, want none", p)
	}
	w := cat.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "delta_base "+VersionKey(t0)+" is gone") {
		t.Errorf("Warnings() = %q", w)
	}
	if gone := cat.DropDanglingDeltas(t0); len(gone) != 1 || len(cat.Warnings()) != 0 {
		t.Errorf("DropDanglingDeltas = %v, then warnings %q", gone, cat.Warnings())
	}
}
