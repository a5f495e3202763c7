package catalog

import (
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/relations"
)

// appImg is an image of appliance name at version, with relations.
func appImg(name, version string, day int, provides, requires string) Image {
	im := img(name, "amd64", time.Date(2026, 3, day, 0, 0, 0, 0, time.UTC), name+version)
	im.ApplianceVersion = version
	im.Line, _ = LineOf(version)
	im.Custom = map[string]string{"ports": "5432/tcp"}
	if provides != "" {
		im.Custom[relations.Provides] = provides
	}
	if requires != "" {
		im.Custom[relations.Requires] = requires
	}
	return im
}

// Every version records its appliance build, so that the rules know an
// older version's appliance version too; a version without a record is
// described by its product (its version only when newest); a record that
// does not parse is a problem.
func TestApplianceImages(t *testing.T) {
	c := New()
	mustAdd(t, c, appImg("postgresql", "1.1.0", 1, "postgresql:5432", ""))
	mustAdd(t, c, appImg("postgresql", "1.1.1", 2, "postgresql:5432", ""))
	mustAdd(t, c, appImg("miniflux", "1.0.0", 3, "http:8080", "db=postgresql >=1.1, <2"))
	mustAdd(t, c, img("redis", "amd64", time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), "r")) // no relations
	data := c.Marshal()
	if !strings.Contains(string(data), `"appliance": {
            "version": "1.1.0",
            "provides": "postgresql:5432"
          }`) {
		t.Errorf("the version's record is not in the catalog:\n%s", data)
	}
	images, problems := c.ApplianceImages()
	if len(problems) != 0 || len(images) != 3 {
		t.Fatalf("ApplianceImages = %+v, %v", images, problems)
	}
	mf, old, newest := images[0], images[1], images[2]
	if mf.Appliance != "miniflux" || !mf.Launchable || len(mf.Requires) != 1 || mf.Requires[0].Version != ">=1.1, <2" || mf.Product != "miniflux:1.0:amd64" {
		t.Errorf("miniflux: %+v", mf)
	}
	if old.Version != "1.1.0" || old.Launchable || !newest.Launchable || newest.Version != "1.1.1" || newest.Fingerprint != hexOf("fppostgresql1.1.1") {
		t.Errorf("postgresql: %+v %+v", old, newest)
	}
	if u := relations.Unsatisfied(images); len(u) != 0 {
		t.Errorf("Unsatisfied = %v", u)
	}

	// Versions without a record (published before they had one): the
	// product describes the newest, and gives the older ones its
	// relations with no version.
	for _, p := range c.Products {
		for _, v := range p.Versions {
			v.Appliance = ApplianceBuild{}
		}
	}
	images, _ = c.ApplianceImages()
	if old, newest := images[1], images[2]; old.Version != "" || len(old.Provides) != 1 || newest.Version != "1.1.1" {
		t.Errorf("without records: %+v %+v", old, newest)
	}
	// Another tool's edit that does not parse.
	c.Products["miniflux:1.0:amd64"].Custom[relations.Requires] = "db=postgresql ~1"
	images, problems = c.ApplianceImages()
	if len(images) != 2 || len(problems) != 1 || !strings.Contains(problems[0], "miniflux:1.0:amd64 version 20260303_000000: requires") {
		t.Errorf("ApplianceImages = %d images, problems %v", len(images), problems)
	}
}
