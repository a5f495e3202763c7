package catalog

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func addSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

// FuzzParse: Parse never panics, and whatever it accepts marshals to bytes
// that parse again to the same bytes.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		_ = c.Problems()
		_ = c.Entries()
		out := c.Marshal()
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of our own output failed: %v\n%s", err, out)
		}
		if string(back.Marshal()) != string(out) {
			t.Fatal("Marshal is not stable")
		}
	})
}

// FuzzMerge: adding and removing fuzzed images on any accepted catalog never
// panics, a refused Add leaves the catalog unchanged, and an accepted one
// never introduces a problem clients would hit.
func FuzzMerge(f *testing.F) {
	base := New()
	base.Add(img("nginx", "amd64", t0, "n1", "web"))
	f.Add(base.Marshal(), "nginx", "amd64", "web", int64(1764092100), "seed", "nginx")
	f.Add(base.Marshal(), "redis", "aarch64", "cache", int64(1764092100), "n1", "web/amd64")
	f.Fuzz(func(t *testing.T, data []byte, name, arch, alias string, created int64, seed, removeTarget string) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		hadProblems := len(c.Problems()) > 0
		before := string(c.Marshal())
		im := img(name, arch, time.Unix(created, 0), seed, alias)
		if _, err := c.Add(im); err != nil {
			if string(c.Marshal()) != before {
				t.Fatalf("refused Add (%v) changed the catalog", err)
			}
		} else if !hadProblems {
			if p := c.Problems(); len(p) > 0 {
				t.Fatalf("Add introduced problems: %q", p)
			}
		}
		before = string(c.Marshal())
		if _, err := c.Remove(removeTarget, "", t0); err != nil && string(c.Marshal()) != before {
			t.Fatalf("refused Remove (%v) changed the catalog", err)
		}
		if _, err := Parse(c.Marshal()); err != nil {
			t.Fatalf("result does not parse: %v", err)
		}
	})
}
