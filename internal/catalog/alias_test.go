package catalog

import (
	"strings"
	"testing"
)

// Aliases Incus could not resolve unambiguously are refused, and the error
// says why: all-hex aliases (1 to 64 digits) read as fingerprint prefixes,
// and "<alias>/<arch>" collides with the form the client generates.
func TestValidateAliasAmbiguous(t *testing.T) {
	for _, tt := range []struct{ alias, want string }{
		{"648bd08973c9", "fingerprint prefix"},
		{"a", "fingerprint prefix"},
		{"cafe", "fingerprint prefix"},
		{"DEADBEEF", "fingerprint prefix"},
		{strings.Repeat("ab", 32), "fingerprint prefix"},
		{"web/amd64", `collide with the form it makes for alias "web"`},
		{"web/x86_64", "architecture name"},
		{"web/loongarch64", "architecture name"}, // known to Incus, not a product arch here
		{"a/b/armhf", `alias "a/b"`},
	} {
		err := ValidateAlias(tt.alias)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ValidateAlias(%q) = %v, want an error containing %q", tt.alias, err, tt.want)
		}
	}
	for _, ok := range []string{"web", "cafe-1", "g", "nginx/1.0", "1.25", "amd64", strings.Repeat("ab", 32) + "x", "deadbeefz"} {
		if err := ValidateAlias(ok); err != nil {
			t.Errorf("ValidateAlias(%q) = %v, want nil", ok, err)
		}
	}
}

// An appliance named with hex digits only would become such an alias.
func TestAddRefusesHexName(t *testing.T) {
	c := New()
	i := img("cafe", "amd64", t0, "c1")
	before := string(c.Marshal())
	_, err := c.Add(i)
	if err == nil || !strings.Contains(err.Error(), "fingerprint prefix") || !strings.Contains(err.Error(), "main alias") {
		t.Fatalf("Add(name cafe) = %v, want a fingerprint-prefix error naming the main alias", err)
	}
	if string(c.Marshal()) != before {
		t.Error("a refused Add changed the catalog")
	}
}

// Versions published before the squashfs root item was keyed "squashfs"
// (as incus-simplestreams keys it) had it under "root.squashfs": the same
// image again is still a no-op, not "different content".
func TestRepublishUnderOldRootItemKey(t *testing.T) {
	c := New()
	i := img("nginx", "amd64", t0, "n1")
	mustAdd(t, c, i)
	v := c.Products["nginx:amd64"].Versions[VersionKey(t0)]
	if _, ok := v.Items[FTypeSquashfs]; !ok {
		t.Fatalf("root item not keyed %q: %v", FTypeSquashfs, v.Items)
	}
	v.Items["root.squashfs"] = v.Items[FTypeSquashfs]
	delete(v.Items, FTypeSquashfs)
	res, err := c.Add(i)
	if err != nil || res.Changed() {
		t.Fatalf("republish = %+v, %v; want a no-op", res, err)
	}
}
