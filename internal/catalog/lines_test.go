package catalog

import (
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
