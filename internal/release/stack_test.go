package release

import (
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/relations"
)

var (
	pgProvides = []relations.Provide{{Interface: "postgresql", Port: 5432}}
	db         = relations.Require{Name: "db", Interface: "postgresql", Version: ">=1.0, <2"}
)

func pgImage(version, fp, variant string) relations.Image {
	return relations.Image{Appliance: "postgresql", Variant: variant, Arch: "amd64", Version: version, Provides: pgProvides, Fingerprint: fp, Launchable: true}
}

// A relation's provider: a build released in this run that the
// constraint allows, else the newest published one it allows (default
// variants only); a multiple relation needs none; a relation nothing
// satisfies is named.
func TestPickProviders(t *testing.T) {
	mf := &appliance.Appliance{Name: "miniflux", Requires: []relations.Require{db, {Name: "targets", Interface: "prometheus-scrape", Multiple: true}}}
	published := []relations.Image{pgImage("1.1.0", "p110", ""), pgImage("1.4.0", "p140", ""), pgImage("2.0.0", "p200", ""), pgImage("1.9.0", "cloud", "cloud")}
	picks, err := pickProviders(mf, "amd64", nil, published)
	if err != nil || len(picks) != 1 || picks[0].image.Fingerprint != "p140" || picks[0].fresh != nil || picks[0].label() != "postgresql 1.4.0 (published, p140)" {
		t.Fatalf("published only: %+v, %v", picks, err)
	}
	fresh := []freshBuild{{image: pgImage("1.2.0", "fresh", "")}}
	if picks, err = pickProviders(mf, "amd64", fresh, published); err != nil || len(picks) != 1 || picks[0].fresh == nil || picks[0].label() != "postgresql 1.2.0 (released in this run)" {
		t.Errorf("with a fresh build: %+v, %v", picks, err)
	}
	fresh = []freshBuild{{image: pgImage("2.1.0", "fresh2", "")}} // outside the constraint
	if picks, err = pickProviders(mf, "amd64", fresh, published); err != nil || picks[0].image.Fingerprint != "p140" {
		t.Errorf("with a fresh build the constraint excludes: %+v, %v", picks, err)
	}
	_, err = pickProviders(mf, "amd64", nil, published[2:])
	if err == nil || err.Error() != "relation db needs postgresql >=1.0, <2: no provider on amd64, published or released in this run" {
		t.Errorf("nothing satisfies: %v", err)
	}
	if _, err := pickProviders(mf, "arm64", nil, published); err == nil {
		t.Error("a provider on another architecture was picked")
	}
}

// stackFixture releases postgresql and miniflux (amd64) with fakes.
func stackFixture() *fixture {
	f := newFixture()
	pg := &appliance.Appliance{Name: "postgresql", Version: "1.2.0", Architectures: []string{"amd64"}, Provides: pgProvides}
	mf := &appliance.Appliance{Name: "miniflux", Version: "1.0.0", Architectures: []string{"amd64"}, Requires: []relations.Require{db}}
	f.apps = []*appliance.Appliance{pg, mf}
	f.p.Appliances = func(name string) (*appliance.Appliance, error) { return pg, nil }
	return f
}

// A consumer released in the same run as its provider is gated with
// that fresh build: launched first, wired, then the consumer checked.
func TestConsumerGatedWithTheProviderOfTheRun(t *testing.T) {
	f := stackFixture()
	res := f.run(t)
	if got := outcomes(res); got != "postgresql/amd64=released miniflux/amd64=released" {
		t.Fatalf("outcomes %s", got)
	}
	ps := f.g.providers["miniflux/amd64"]
	if len(ps) != 1 || ps[0].Relation.Name != "db" || ps[0].Provide.Interface != "postgresql" || ps[0].Appliance.Name != "postgresql" ||
		ps[0].Label != "postgresql 1.2.0 (released in this run)" || len(f.r.fetched) != 0 {
		t.Errorf("miniflux's gate providers %+v (fetched %v)", ps, f.r.fetched)
	}
	if len(f.g.providers["postgresql/amd64"]) != 0 {
		t.Error("the provider's own gate got providers")
	}
}

// A consumer released alone is gated with the newest published provider
// its constraint allows, fetched from the registry; with none, its gate
// fails naming the relation and nothing of it is published.
func TestConsumerGatedWithAPublishedProvider(t *testing.T) {
	f := stackFixture()
	f.apps = f.apps[1:]
	f.r.images = []relations.Image{pgImage("1.1.0", "p110", ""), pgImage("2.0.0", "p200", "")}
	res := f.run(t)
	ps := f.g.providers["miniflux/amd64"]
	if outcomes(res) != "miniflux/amd64=released" || len(ps) != 1 || ps[0].Label != "postgresql 1.1.0 (published, p110)" ||
		strings.Join(f.r.fetched, " ") != "p110" || !strings.HasSuffix(ps[0].Metadata, "/meta") {
		t.Errorf("outcomes %s, providers %+v, fetched %v", outcomes(res), ps, f.r.fetched)
	}

	f = stackFixture()
	f.apps = f.apps[1:]
	res = f.run(t)
	if outcomes(res) != "miniflux/amd64=gate-failed" || len(f.r.published) != 0 || len(f.g.launched) != 0 {
		t.Fatalf("no provider: outcomes %s, published %v, launched %v", outcomes(res), f.r.published, f.g.launched)
	}
	if err := res.Err(); err == nil || !strings.Contains(err.Error(), "miniflux/amd64 failed the gate: relations: relation db needs postgresql >=1.0, <2") {
		t.Errorf("Err = %v", err)
	}
}

// regateFixture releases postgresql (at version) alone into a registry
// publishing postgresql 1.1.0 and miniflux 1.0.0 (db: >=1.0, <2).
func regateFixture(version string) *fixture {
	f := stackFixture()
	f.apps = f.apps[:1]
	f.apps[0].Version = version
	consumer := &appliance.Appliance{Name: "miniflux", Version: "1.0.0", Architectures: []string{"amd64"}, Requires: []relations.Require{db}}
	pg := f.apps[0]
	f.p.Appliances = func(name string) (*appliance.Appliance, error) {
		if name == "miniflux" {
			return consumer, nil
		}
		return pg, nil
	}
	f.r.images = []relations.Image{pgImage("1.1.0", "p110", ""),
		{Appliance: "miniflux", Arch: "amd64", Version: "1.0.0", Requires: consumer.Requires, Fingerprint: "mf100", Launchable: true}}
	return f
}

// Releasing a provider re-gates the published consumers that would pick
// it, with the new build wired in; a consumer that fails holds the
// provider back, and the failure names the consumer.
func TestProviderReleaseRegatesItsConsumers(t *testing.T) {
	f := regateFixture("1.2.0")
	res := f.run(t)
	ps := f.g.providers["miniflux/amd64"]
	if outcomes(res) != "postgresql/amd64=released" || strings.Join(f.g.launched, " ") != "postgresql/amd64 miniflux/amd64" ||
		len(ps) != 1 || ps[0].Label != "postgresql 1.2.0 (released in this run)" || strings.Join(f.r.fetched, " ") != "mf100" {
		t.Fatalf("outcomes %s, launched %v, miniflux's providers %+v, fetched %v", outcomes(res), f.g.launched, ps, f.r.fetched)
	}
	if c := res.Items[0].Gate.Checks; c[len(c)-1].Name != "consumer miniflux" || !c[len(c)-1].Passed {
		t.Errorf("checks %+v", c)
	}

	f = regateFixture("1.2.0")
	f.g.fail["miniflux/amd64"] = "health"
	res = f.run(t)
	if outcomes(res) != "postgresql/amd64=gate-failed" || len(f.r.published) != 0 {
		t.Fatalf("a provider breaking miniflux: outcomes %s, published %v", outcomes(res), f.r.published)
	}
	if err := res.Err(); err == nil || !strings.Contains(err.Error(), "postgresql/amd64 failed the gate: consumer miniflux: miniflux 1.0.0 (published, mf100) fails with this build: health: detail of health") {
		t.Errorf("Err = %v", err)
	}

	// A version the consumer does not allow would not serve it: no re-gate.
	f = regateFixture("2.0.0")
	if res = f.run(t); outcomes(res) != "postgresql/amd64=released" || strings.Join(f.g.launched, " ") != "postgresql/amd64" {
		t.Errorf("postgresql 2.0.0: outcomes %s, launched %v", outcomes(res), f.g.launched)
	}
}

// A consumer the registry refuses (a relation nothing published
// satisfies: relations.UnmetError) fails its gate naming the relation;
// the release goes on with the other appliances.
func TestConsumerTheRegistryRefuses(t *testing.T) {
	f := stackFixture()
	f.apps = f.apps[1:]
	f.r.refuse = &relations.UnmetError{Unmet: []relations.Unmet{{Consumer: relations.Image{Appliance: "miniflux", Version: "1.0.0", Arch: "amd64"}, Relation: db}}}
	res := f.run(t)
	if outcomes(res) != "miniflux/amd64=gate-failed" || len(f.g.launched) != 0 {
		t.Fatalf("outcomes %s, launched %v", outcomes(res), f.g.launched)
	}
	if err := res.Err(); err == nil || !strings.Contains(err.Error(), "miniflux/amd64 failed the gate: relations: miniflux 1.0.0: relation db needs postgresql >=1.0, <2, which no published appliance provides on amd64") {
		t.Errorf("Err = %v", err)
	}
}
