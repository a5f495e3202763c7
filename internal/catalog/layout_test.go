package catalog

import (
	"bytes"
	"testing"
	"time"
)

func TestCloneIsDeepAndEqual(t *testing.T) {
	c := New()
	for i, name := range []string{"nginx", "redis"} {
		if _, err := c.Add(img(name, "amd64", time.Date(2026, 11, 1+i, 0, 0, 0, 0, time.UTC), name)); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	c.RecordCommit("a", now)
	if err := c.AddPending(Pending{ID: "p", Product: "x:amd64", Paths: []string{"images/x"}, Expires: now.Add(time.Hour), Aliases: []string{"x@amd64"}}); err != nil {
		t.Fatal(err)
	}
	c.retire("images/old", now)
	before := c.Marshal()
	d := c.Clone()
	if !bytes.Equal(d.Marshal(), before) {
		t.Fatal("the clone marshals differently")
	}
	// Changing the clone everywhere leaves the original as it was.
	for _, p := range d.Products {
		p.Aliases = "changed"
		for _, v := range p.Versions {
			for k, it := range v.Items {
				it.Size++
				v.Items[k] = it
			}
		}
	}
	d.State.Pending[0].Paths[0] = "images/y"
	d.State.Retired["images/new"] = now
	d.RecordCommit("b", now)
	if !bytes.Equal(c.Marshal(), before) {
		t.Error("changing the clone changed the original")
	}
}

func TestFileOfKeepsFamiliesTogether(t *testing.T) {
	for _, n := range []int{2, 8, 64} {
		a := Layout(n).FileOf(lineProductKey("nginx", "1.26", "amd64"))
		for _, pk := range []string{lineProductKey("nginx", "1.28", "amd64"), ProductKey("nginx", "arm64"), lineProductKey("nginx", "2.0", "arm64")} {
			if got := Layout(n).FileOf(pk); got != a {
				t.Errorf("n=%d: %s in %s, nginx:1.26:amd64 in %s: an appliance's products must share a file", n, pk, got, a)
			}
		}
	}
	if Layout(1).FileOf("nginx:amd64") != ImagesPath {
		t.Error("one file: images.json")
	}
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		seen[Layout(8).FileOf(ProductKey("app"+string(rune('a'+i%26))+string(rune('a'+i/26)), "amd64"))] = true
	}
	if len(seen) != 8 {
		t.Errorf("200 appliances over 8 files used %d of them", len(seen))
	}
}

func TestShardedRootIsFreshOnlyAndUnreadableAsACatalog(t *testing.T) {
	root := New()
	if err := root.SetShards(4); err != nil {
		t.Fatal(err)
	}
	if root.Format == FormatProducts {
		t.Fatal("a sharded root must not look like a one-file catalog to older tools")
	}
	if err := root.SetShards(8); err == nil {
		t.Error("a root of 4 files took another count")
	}
	back, err := Parse(root.Marshal())
	if err != nil || back.Layout() != 4 {
		t.Fatalf("root read back: %v, %v", back, err)
	}
	busy := New()
	if err := busy.AddPending(Pending{ID: "p", Product: "x:amd64", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := busy.SetShards(4); err == nil {
		t.Error("a catalog with a publish in flight became a root")
	}
	// A one-file catalog claiming several files, or a root with products.
	bad := New()
	bad.state().Shards = 4
	if _, err := Parse(bad.Marshal()); err == nil {
		t.Error("products:1.0 with 4 files parsed")
	}
	withProducts := New()
	if _, err := withProducts.Add(img("nginx", "amd64", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "n")); err != nil {
		t.Fatal(err)
	}
	withProducts.Format = FormatRoot
	withProducts.state().Shards = 4
	if _, err := Parse(withProducts.Marshal()); err == nil {
		t.Error("a root holding products parsed")
	}
}

// A root's retirement record of a path some product file references again
// is dropped: if that file later loses the reference behind publish's
// back, the path waits a full grace instead of going at once.
func TestRootForgetsRetirementOfReferencedPaths(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	root := New()
	if err := root.SetShards(2); err != nil {
		t.Fatal(err)
	}
	file := New()
	im := img("nginx", "amd64", now, "n")
	if _, err := file.Add(im); err != nil {
		t.Fatal(err)
	}
	p := im.Paths()[0]
	root.retire(p, now.Add(-10*time.Hour))
	objects := []Object{{Path: p}}
	if del := root.Deletable(objects, now, time.Hour, file); len(del) != 0 {
		t.Fatalf("deletable = %v while referenced", del)
	}
	if _, ok := root.State.Retired[p]; ok {
		t.Error("the root kept the old retirement of a referenced path")
	}
	// The file forgets the reference without state (another tool).
	if del := root.Deletable(objects, now, time.Hour, New()); len(del) != 0 {
		t.Errorf("deletable at once after the reference went: %v", del)
	}
}
