package catalog

import (
	"maps"
	"strings"
	"testing"
	"time"
)

func lineImg(version string, day int, aliases ...string) Image {
	im := img("nginx", "amd64", time.Date(2026, 11, day, 12, 0, 0, 0, time.UTC), version, aliases...)
	im.ApplianceVersion = version
	im.Line, _ = LineOf(version)
	return im
}

// aliasesOf lists each product's aliases.
func aliasesOf(c *Catalog) map[string]string {
	out := map[string]string{}
	for pk, p := range c.Products {
		out[pk] = p.Aliases
	}
	return out
}

// LineOf reads versions with internal/semver, the one rule: what is not
// a semantic version has no line.
func TestLineOf(t *testing.T) {
	for v, want := range map[string]string{"1.2.3": "1.2", "10.0.1-rc.1+b": "10.0", "0.1.0": "0.1"} {
		if got, err := LineOf(v); err != nil || got != want {
			t.Errorf("LineOf(%q) = %q, %v; want %q", v, got, err, want)
		}
	}
	for _, v := range []string{"1.2", "1.2.x", "01.2.3", "1.2.3-rc..1", "v1.2.3"} {
		if l, err := LineOf(v); err == nil {
			t.Errorf("LineOf(%q) = %q, want an error", v, l)
		}
	}
}

// A product per version line; NAME/MAJOR.MINOR, NAME/MAJOR and NAME (with
// the other aliases) follow the newest line that should carry them, also
// when an older line gets a fix after a newer line was published.
func TestVersionLines(t *testing.T) {
	c := New()
	mustAdd(t, c, lineImg("1.2.0", 1, "web"))
	mustAdd(t, c, lineImg("1.3.0", 2))
	mustAdd(t, c, lineImg("2.0.0", 3))
	mustAdd(t, c, lineImg("1.2.1", 4)) // a fix of an older line, published last
	want := map[string]string{
		"nginx:1.2:amd64": "nginx/1.2",
		"nginx:1.3:amd64": "nginx/1,nginx/1.3",
		"nginx:2.0:amd64": "nginx,nginx/2,nginx/2.0,web",
	}
	if got := aliasesOf(c); len(got) != 3 || got["nginx:1.2:amd64"] != want["nginx:1.2:amd64"] || got["nginx:1.3:amd64"] != want["nginx:1.3:amd64"] || got["nginx:2.0:amd64"] != want["nginx:2.0:amd64"] {
		t.Fatalf("aliases %v, want %v", got, want)
	}
	p := c.Products["nginx:1.2:amd64"]
	if len(p.Versions) != 2 || p.Version != "1.2.1" || p.Line != "1.2" {
		t.Errorf("line 1.2: %d versions, version %s, line %s", len(p.Versions), p.Version, p.Line)
	}
	// Removing the newest line gives its aliases to the next one.
	if _, err := c.Remove("nginx/2.0", "", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := aliasesOf(c); got["nginx:1.3:amd64"] != "nginx,nginx/1,nginx/1.3,web" || got["nginx:1.2:amd64"] != "nginx/1.2" {
		t.Errorf("after removing 2.0: %v", got)
	}
	// An alias another appliance owns is refused, naming the owner.
	other := img("redis", "amd64", time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC), "w", "www")
	mustAdd(t, c, other)
	_, err := c.Add(lineImg("3.0.0", 10, "www"))
	if err == nil || !strings.Contains(err.Error(), `alias "www" is already owned by product "redis:amd64"`) {
		t.Errorf("error = %v", err)
	}
	// The line must match the version.
	bad := lineImg("4.0.0", 11)
	bad.Line = "4.1"
	if _, err := c.Add(bad); err == nil || !strings.Contains(err.Error(), `line "4.1" is not the MAJOR.MINOR of version "4.0.0"`) {
		t.Errorf("error = %v", err)
	}
}

// A non-default variant's lines are a family of their own,
// NAME/VARIANT:LINE:ARCH, with the same aliases ending in /VARIANT; the
// default variant's lines keep theirs.
func TestVersionLinesOfAVariant(t *testing.T) {
	c := New()
	cloud := func(version string, day int, aliases ...string) Image {
		im := lineImg(version, day, aliases...)
		im.Fingerprint = hexOf("cloud" + version)
		im.ApplianceVariant, im.Variant = "cloud", "cloud"
		return im
	}
	mustAdd(t, c, lineImg("1.2.0", 1, "web"))
	mustAdd(t, c, lineImg("2.0.0", 2))
	mustAdd(t, c, cloud("1.2.0", 3, "web"))
	mustAdd(t, c, cloud("2.0.0", 4))
	want := map[string]string{
		"nginx:1.2:amd64":       "nginx/1,nginx/1.2",
		"nginx:2.0:amd64":       "nginx,nginx/2,nginx/2.0,web",
		"nginx/cloud:1.2:amd64": "nginx/1.2/cloud,nginx/1/cloud",
		"nginx/cloud:2.0:amd64": "nginx/cloud,nginx/2.0/cloud,nginx/2/cloud,web/cloud",
	}
	if got := aliasesOf(c); !maps.Equal(got, want) {
		t.Fatalf("aliases %v, want %v", got, want)
	}
	// The image's own product: where deltas find their base.
	if pk := cloud("2.0.1", 5).ProductKey(); pk != "nginx/cloud:2.0:amd64" {
		t.Errorf("product key %s", pk)
	}
	if bs := c.DeltaBases(cloud("2.0.1", 5).ProductKey(), VersionKey(time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC)), RootSquashfs, 3); len(bs) != 1 || bs[0].Version != VersionKey(time.Date(2026, 11, 4, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("delta bases of cloud 2.0.1: %v, want cloud 2.0.0's version", bs)
	}
	// Removing the newest cloud line moves its aliases to the other cloud
	// line only.
	if _, err := c.Remove("nginx/2.0/cloud", "", time.Now()); err != nil {
		t.Fatal(err)
	}
	want["nginx/cloud:1.2:amd64"] = "nginx/cloud,nginx/1.2/cloud,nginx/1/cloud,web/cloud"
	delete(want, "nginx/cloud:2.0:amd64")
	if got := aliasesOf(c); !maps.Equal(got, want) {
		t.Errorf("after removing cloud 2.0: %v, want %v", got, want)
	}
}

// An appliance published before it had lines keeps every alias through
// its first line image: the line family takes the plain product's
// aliases over in the same change, the plain product keeps its versions.
func TestLinesTakeOverThePlainProduct(t *testing.T) {
	c := New()
	plain := img("nginx", "amd64", time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), "p1", "web")
	plain.ApplianceVersion = "1.1.0"
	mustAdd(t, c, plain)
	resolves := func(when string, aliases ...string) {
		t.Helper()
		for _, a := range aliases {
			if rs, err := c.Resolve(a, "amd64"); err != nil || len(rs) != 1 {
				t.Errorf("%s: %s resolves to %v, %v", when, a, rs, err)
			}
		}
	}
	resolves("before the switch", "nginx", "web")
	if _, err := c.CheckAdd(lineImg("1.2.0", 2)); err != nil {
		t.Fatalf("the first line image is refused: %v", err)
	}
	mustAdd(t, c, lineImg("1.2.0", 2))
	want := map[string]string{"nginx:amd64": "", "nginx:1.2:amd64": "nginx,nginx/1,nginx/1.2,web"}
	if got := aliasesOf(c); !maps.Equal(got, want) {
		t.Errorf("aliases after the switch %v, want %v", got, want)
	}
	if len(c.Products["nginx:amd64"].Versions) != 1 {
		t.Error("the plain product lost its version")
	}
	resolves("after the switch", "nginx", "web", "nginx/1", "nginx/1.2")
	mustAdd(t, c, lineImg("2.0.0", 3))
	if got := aliasesOf(c); got["nginx:2.0:amd64"] != "nginx,nginx/2,nginx/2.0,web" || got["nginx:1.2:amd64"] != "nginx/1,nginx/1.2" || got["nginx:amd64"] != "" {
		t.Errorf("aliases after 2.0.0: %v", got)
	}
	if p := c.Problems(); len(p) != 0 {
		t.Errorf("problems: %v", p)
	}
}
