package relations

import (
	"reflect"
	"strings"
	"testing"
)

var (
	db      = Require{Name: "db", Interface: "postgresql", Version: ">=1.1, <2"}
	targets = Require{Name: "targets", Interface: "prometheus-scrape", Multiple: true}
	up      = Require{Name: "upstream", Interface: "http"}
)

func TestEncodeRoundTrip(t *testing.T) {
	ps := []Provide{{Interface: "http", Port: 8080}, {Interface: "postgresql"}}
	if s := FormatProvides(ps); s != "http:8080,postgresql" {
		t.Errorf("FormatProvides = %q", s)
	}
	rs := []Require{db, targets, up}
	s := FormatRequires(rs)
	if s != "db=postgresql >=1.1, <2; targets=prometheus-scrape (multiple); upstream=http" {
		t.Errorf("FormatRequires = %q", s)
	}
	if got, err := ParseRequires(s); err != nil || !reflect.DeepEqual(got, rs) {
		t.Errorf("ParseRequires(%q) = %+v, %v", s, got, err)
	}
	if got, err := ParseProvides(FormatProvides(ps)); err != nil || !reflect.DeepEqual(got, ps) {
		t.Errorf("ParseProvides = %+v, %v", got, err)
	}
	if got, err := ParseRequires(""); got != nil || err != nil {
		t.Errorf("ParseRequires(\"\") = %v, %v", got, err)
	}
}

func TestParseRefuses(t *testing.T) {
	for s, want := range map[string]string{
		"db":                      "is not NAME=INTERFACE",
		"db=":                     `interface "" must be a lowercase name`,
		"DB=postgresql":           `relation "DB" must be a lowercase name`,
		"db=postgresql 1.0":       "not OPERATOR VERSION",
		"db=postgresql >=2, <1":   "no version satisfies it",
		"db=postgresql; x":        "is not NAME=INTERFACE",
		"db=postgre_sql >=1 (mu)": `interface "postgre_sql" must be a lowercase name`,
	} {
		if _, err := ParseRequires(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRequires(%q) = %v, want %q", s, err, want)
		}
	}
	for s, want := range map[string]string{
		"postgresql:x":     `"x" is not a TCP port`,
		"postgresql:70000": "is not a TCP port",
		"Http":             `interface "Http"`,
		"http,,pg":         `interface ""`,
	} {
		if _, err := ParseProvides(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseProvides(%q) = %v, want %q", s, err, want)
		}
	}
}

func FuzzParseRequires(f *testing.F) {
	for _, s := range []string{"db=postgresql >=1.1, <2; targets=prometheus-scrape (multiple)", "a=b", "", ";", "x=y <1 (multiple)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseRequires(s)
		if err != nil {
			return
		}
		again, err := ParseRequires(FormatRequires(rs))
		if err != nil || !reflect.DeepEqual(again, rs) {
			t.Fatalf("%q: %+v formats to %q, which reads back as %+v, %v", s, rs, FormatRequires(rs), again, err)
		}
	})
}

func pg(version, key string, launchable bool) Image {
	return Image{Appliance: "postgresql", Arch: "amd64", Version: version, Provides: []Provide{{Interface: "postgresql", Port: 5432}},
		Launchable: launchable, Product: "postgresql:" + version[:3] + ":amd64", Key: key}
}

func miniflux(arch string) Image {
	return Image{Appliance: "miniflux", Arch: arch, Version: "1.0.0", Requires: []Require{db, {Name: "x", Interface: "http", Multiple: true}},
		Provides: []Provide{{Interface: "http"}}, Launchable: true, Product: "miniflux:1.0:" + arch, Key: "20260101_000000"}
}

func TestSatisfiesAndProviders(t *testing.T) {
	old, mid, new2 := pg("1.0.0", "1", false), pg("1.1.0", "2", true), pg("2.0.0", "3", true)
	set := []Image{old, new2, mid, miniflux("amd64")}
	if old.Satisfies(db) || !mid.Satisfies(db) || new2.Satisfies(db) {
		t.Errorf("Satisfies: 1.0.0 %v, 1.1.0 %v, 2.0.0 %v; want false, true, false", old.Satisfies(db), mid.Satisfies(db), new2.Satisfies(db))
	}
	unknown := pg("1.1.0", "4", true)
	unknown.Version = ""
	if unknown.Satisfies(db) || !unknown.Satisfies(Require{Name: "db", Interface: "postgresql"}) {
		t.Error("an unknown version satisfies no constraint, and an unconstrained relation")
	}
	// Newest first; only amd64.
	got := Providers(append(set, Image{Appliance: "postgresql", Arch: "arm64", Version: "1.9.0", Provides: old.Provides}), Require{Name: "db", Interface: "postgresql"}, "amd64")
	var versions []string
	for _, im := range got {
		versions = append(versions, im.Version)
	}
	if strings.Join(versions, " ") != "2.0.0 1.1.0 1.0.0" {
		t.Errorf("Providers: %v", versions)
	}
	if p := Providers(set, db, "amd64"); len(p) != 1 || p[0].Version != "1.1.0" {
		t.Errorf("Providers(db) = %v, want 1.1.0 alone", p)
	}
}

// A consumer counts when launchable; a provider in every version; a
// multiple relation needs none; Broken is what a change adds.
func TestUnsatisfiedAndBroken(t *testing.T) {
	mid := pg("1.1.0", "2", false) // an older version: still a provider
	consumer := miniflux("amd64")
	before := []Image{pg("2.0.0", "3", true), mid, consumer}
	if u := Unsatisfied(before); len(u) != 0 {
		t.Fatalf("Unsatisfied = %v", u)
	}
	after := []Image{pg("2.0.0", "3", true), consumer}
	broken := Broken(before, after)
	if len(broken) != 1 || broken[0].Relation.Name != "db" || broken[0].Consumer.Product != "miniflux:1.0:amd64" {
		t.Fatalf("Broken = %v", broken)
	}
	want := "miniflux 1.0.0 (miniflux:1.0:amd64): relation db: no published appliance provides postgresql >=1.1, <2 on amd64"
	if broken[0].String() != want {
		t.Errorf("Unmet = %q, want %q", broken[0], want)
	}
	// Already broken before: not this change's doing.
	if b := Broken(after, after[:1]); len(b) != 0 {
		t.Errorf("Broken of an already broken consumer = %v", b)
	}
	// An older consumer version is history: not checked.
	oldConsumer := consumer
	oldConsumer.Launchable = false
	if u := Unsatisfied([]Image{oldConsumer}); len(u) != 0 {
		t.Errorf("an older consumer version: %v", u)
	}
	// Another architecture's provider does not count.
	if u := Unsatisfied([]Image{miniflux("arm64"), mid}); len(u) != 1 || u[0].Consumer.Arch != "arm64" {
		t.Errorf("arm64 consumer with an amd64 provider: %v", u)
	}
	e := &UnmetError{Unmet: Unsatisfied([]Image{consumer})}
	if e.Error() != "miniflux 1.0.0: relation db needs postgresql >=1.1, <2, which no published appliance provides on amd64 (publish a provider first)" {
		t.Errorf("UnmetError: %s", e)
	}
	b := &BreakError{Change: "remove postgresql", Broken: broken}
	if !strings.Contains(b.Error(), "remove postgresql would leave miniflux 1.0.0 (miniflux:1.0:amd64) without a provider for relation db (postgresql >=1.1, <2) (pass --force") {
		t.Errorf("BreakError: %s", b)
	}
}

func TestOrder(t *testing.T) {
	apps := []Declared{
		{Name: "miniflux", Requires: []Require{db}, Provides: []Provide{{Interface: "http"}}},
		{Name: "nginx", Provides: []Provide{{Interface: "http"}}},
		{Name: "postgresql", Provides: []Provide{{Interface: "postgresql"}}},
		{Name: "tls-proxy", Requires: []Require{up}},
		{Name: "redis"},
		// A cycle keeps its order.
		{Name: "a", Requires: []Require{{Name: "b", Interface: "ib"}}, Provides: []Provide{{Interface: "ia"}}},
		{Name: "b", Requires: []Require{{Name: "a", Interface: "ia"}}, Provides: []Provide{{Interface: "ib"}}},
	}
	var names []string
	for _, i := range Order(apps) {
		names = append(names, apps[i].Name)
	}
	if got := strings.Join(names, " "); got != "postgresql miniflux nginx tls-proxy redis b a" {
		t.Errorf("Order = %s", got)
	}
}
