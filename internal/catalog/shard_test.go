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

func TestShardOfKeepsFamiliesTogether(t *testing.T) {
	for _, n := range []int{2, 8, 64} {
		a := ShardOf(LineProductKey("nginx", "1.26", "amd64"), n)
		for _, pk := range []string{LineProductKey("nginx", "1.28", "amd64"), ProductKey("nginx", "arm64"), LineProductKey("nginx", "2.0", "arm64")} {
			if got := ShardOf(pk, n); got != a {
				t.Errorf("n=%d: %s in %s, nginx:1.26:amd64 in %s: an appliance's products must share a file", n, pk, got, a)
			}
		}
	}
	if ShardOf("nginx:amd64", 1) != ImagesPath {
		t.Error("one file: images.json")
	}
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		seen[ShardOf(ProductKey("app"+string(rune('a'+i%26))+string(rune('a'+i/26)), "amd64"), 8)] = true
	}
	if len(seen) != 8 {
		t.Errorf("200 appliances over 8 files used %d of them", len(seen))
	}
}
