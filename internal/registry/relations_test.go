package registry

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/relations"
	"github.com/incus-appliance/registry/internal/store"
)

// appliance returns the request publishing appliance name at version
// (created hours after t0), with relations.
func appliance(t testing.TB, name, version string, hours int, provides, requires string) PublishRequest {
	t.Helper()
	req := makeImage(t, name, t0.Add(time.Duration(hours)*time.Hour), int64(len(name)*100+hours), name)
	req.Image.ApplianceVersion = version
	req.Image.Custom = map[string]string{}
	if provides != "" {
		req.Image.Custom[relations.Provides] = provides
	}
	if requires != "" {
		req.Image.Custom[relations.Requires] = requires
	}
	return req
}

const minifluxNeeds = "db=postgresql >=1.0, <2"

// Publishing an appliance whose relation nothing published satisfies is
// refused, with a one-line error naming the relation and the
// constraint, before anything is written; a provider in an allowed
// version makes it publishable.
func TestPublishRefusesAnUnmetRequirement(t *testing.T) {
	s := newScene(t)
	miniflux := appliance(t, "miniflux", "1.0.0", 5, "http:8080", minifluxNeeds)
	refused := func(what string) {
		t.Helper()
		unchanged := s.frozen()
		for _, dry := range []bool{true, false} {
			req := miniflux
			req.DryRun = dry
			_, err := s.r.Publish(s.ctx, req)
			var unmet *relations.UnmetError
			if !errors.As(err, &unmet) || strings.Contains(err.Error(), "\n") ||
				!strings.Contains(err.Error(), "relation db needs postgresql >=1.0, <2, which no published appliance provides on amd64") {
				t.Errorf("%s (dry run %v): publish miniflux = %v", what, dry, err)
			}
		}
		unchanged("a refused publish")
	}
	s.publish("redis", t0, 1, "redis") // a registry, without postgresql
	refused("no postgresql")
	mustPublish(t, s.r, appliance(t, "postgresql", "2.0.0", 1, "postgresql:5432", ""))
	refused("postgresql 2.0.0 only")
	mustPublish(t, s.r, appliance(t, "pg-old", "1.4.0", 2, "postgresql:5432", ""))
	mustPublish(t, s.r, miniflux)
	mustVerify(t, s.r)
	// A consumer needing any number of targets needs none.
	mustPublish(t, s.r, appliance(t, "prometheus", "1.0.0", 3, "", "targets=prometheus-scrape (multiple)"))
}

// publishStack publishes postgresql 1.4.0, then 2.0.0 (a newer version
// of the same product), then miniflux allowing only 1.x.
func publishStack(t *testing.T, s *scene) (old, newer, miniflux PublishRequest) {
	t.Helper()
	old = appliance(t, "postgresql", "1.4.0", 1, "postgresql:5432", "")
	newer = appliance(t, "postgresql", "2.0.0", 2, "postgresql:5432", "")
	miniflux = appliance(t, "miniflux", "1.0.0", 3, "http:8080", minifluxNeeds)
	for _, req := range []PublishRequest{old, newer, miniflux} {
		mustPublish(t, s.r, req)
	}
	return old, newer, miniflux
}

// remove and prune refuse to take away the last version a published
// consumer allows, changing nothing, unless forced; forced, they say
// what breaks, and verify reports it.
func TestRemoveAndPruneKeepConsumersSatisfied(t *testing.T) {
	s := newScene(t)
	old, _, _ := publishStack(t, s)
	breaks := func(err error, what, change string) {
		t.Helper()
		var be *relations.BreakError
		if !errors.As(err, &be) || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), change+" would leave miniflux 1.0.0") ||
			!strings.Contains(err.Error(), "without a provider for relation db (postgresql >=1.0, <2)") || !strings.Contains(err.Error(), "--force") {
			t.Errorf("%s: %v", what, err)
		}
	}
	unchanged := s.frozen()
	fp := old.Image.Fingerprint
	for _, dry := range []bool{true, false} {
		_, err := s.r.Remove(s.ctx, fp, RemoveOptions{DryRun: dry})
		breaks(err, "remove postgresql 1.4.0", "remove "+fp)
		_, err = s.r.Prune(s.ctx, PruneOptions{Keep: 1, Grace: time.Hour, DryRun: dry})
		breaks(err, "prune --keep 1", "prune --keep 1")
	}
	unchanged("refused changes")
	// What breaks nothing goes: pruning with keep 2, removing the newest
	// postgresql (1.4.0 still serves miniflux).
	s.prune(PruneOptions{Keep: 2, Grace: time.Hour})
	if res := s.remove("postgresql"); len(res.Removed) != 1 || len(res.Breaks) != 0 {
		t.Errorf("remove the newest postgresql: %+v", res)
	}
	// Forced: done, and it says what breaks.
	res, err := s.r.Remove(s.ctx, fp, RemoveOptions{Force: true})
	if err != nil || len(res.Removed) != 1 || len(res.Breaks) != 1 || !strings.Contains(res.Breaks[0], "miniflux 1.0.0") || !strings.Contains(res.Breaks[0], "relation db") {
		t.Fatalf("forced remove: %+v, %v", res, err)
	}
	if p := problems(s.verifyWith(VerifyOptions{})); !strings.Contains(p, "unsatisfied requirement: miniflux 1.0.0") || !strings.Contains(p, "relation db") {
		t.Errorf("verify after a forced remove: %s", p)
	}
}

// A prune forced past a consumer's constraint says what it broke.
func TestForcedPruneSaysWhatBreaks(t *testing.T) {
	s := newScene(t)
	publishStack(t, s)
	res, err := s.r.Prune(s.ctx, PruneOptions{Keep: 1, Grace: time.Hour, Force: true})
	if err != nil || len(res.Removed) != 1 || len(res.Breaks) != 1 || !strings.Contains(res.Breaks[0], "postgresql >=1.0, <2") {
		t.Fatalf("forced prune: %+v, %v", res, err)
	}
}

// verify flags a catalog another tool edited so that a published
// consumer's relation has no provider.
func TestVerifyFlagsAnUnsatisfiedRequirement(t *testing.T) {
	s := newScene(t)
	old, newer, _ := publishStack(t, s)
	mustVerify(t, s.r)
	l := layout{Layout: readCatalog(t, s.r).Layout()}
	key := l.FileOf(old.Image.ProductKey())
	data, _, err := s.r.readObject(s.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	delete(c.Products, newer.Image.ProductKey())
	s.replace(key, c.Marshal())
	rep := s.verifyWith(VerifyOptions{})
	if p := problems(rep); !strings.Contains(p, "unsatisfied requirement: miniflux 1.0.0 (miniflux:amd64): relation db: no published appliance provides postgresql >=1.0, <2 on amd64") {
		t.Errorf("verify after another tool's edit:\n%s", p)
	}
}

// A registry published before its appliance had version lines keeps
// serving every alias through the switch: after each catalog write of
// the first line publish (and of the next), nginx and web resolve.
func TestLinesSwitchKeepsEveryAlias(t *testing.T) {
	for _, shards := range []int{1, 3} {
		s := newSceneOf(t, shards)
		s.publish("nginx", t0, 1, "web")
		writes := 0
		s.fs.afterPut = func(key string, _ store.PutOptions, err error) error {
			if err != nil || !strings.HasSuffix(key, ".json") {
				return err
			}
			writes++
			c, _, rerr := s.r.readCatalog(s.ctx)
			for _, a := range []string{"nginx", "web"} {
				if rerr != nil {
					t.Errorf("%d files: after writing %s: %v", shards, key, rerr)
				} else if rs, err := c.Resolve(a, "amd64"); err != nil || len(rs) != 1 {
					t.Errorf("%d files: after writing %s, %s resolves to %v, %v", shards, key, a, rs, err)
				}
			}
			return nil
		}
		for i, v := range []string{"1.2.0", "1.3.0"} {
			req := makeImage(t, "nginx", t0.Add(time.Duration(i+1)*time.Hour), int64(2+i))
			req.Image.ApplianceVersion, req.Image.Line = v, v[:3]
			res := mustPublish(t, s.r, req)
			if res.Product != "nginx:"+v[:3]+":amd64" || !slices.Contains(res.Aliases, "nginx") || !slices.Contains(res.Aliases, "web") || !slices.Contains(res.Aliases, "nginx/1") {
				t.Errorf("%d files: publish %s: product %s, aliases %v", shards, v, res.Product, res.Aliases)
			}
		}
		s.fs.afterPut = nil
		if writes == 0 {
			t.Errorf("%d files: no catalog write seen", shards)
		}
		c := readCatalog(t, s.r)
		if p := c.Products["nginx:amd64"]; p == nil || p.Aliases != "" || len(p.Versions) != 1 {
			t.Errorf("%d files: the plain product after the switch: %+v", shards, p)
		}
		mustVerify(t, s.r)
	}
}

// FetchImage writes a published image's files, as published, and
// refuses a file missing or damaged in the store; the relation view
// lists the images taking part in relations.
func TestFetchImageAndApplianceImages(t *testing.T) {
	s := newScene(t)
	old, _, _ := publishStack(t, s)
	dir := t.TempDir()
	meta, root, err := s.r.FetchImage(s.ctx, old.Image.Fingerprint, dir)
	if err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{meta: old.MetadataPath, root: old.RootPath} {
		a, _ := os.ReadFile(got)
		b, _ := os.ReadFile(want)
		if len(a) == 0 || !bytes.Equal(a, b) || filepath.Dir(got) != dir {
			t.Errorf("fetched %s: %d bytes, want those of %s", got, len(a), want)
		}
	}
	if _, _, err := s.r.FetchImage(s.ctx, strings.Repeat("0", 64), dir); err == nil || !strings.Contains(err.Error(), "is not published") {
		t.Errorf("an unknown image: %v", err)
	}
	// A damaged or missing file is an error naming it.
	rootKey := old.Image.Paths()[1]
	s.replace(rootKey, bytes.Repeat([]byte("x"), int(old.Image.Root.Size)))
	if _, _, err := s.r.FetchImage(s.ctx, old.Image.Fingerprint, t.TempDir()); err == nil || !strings.Contains(err.Error(), rootKey+" is damaged (") {
		t.Errorf("a damaged root: %v", err)
	}
	_ = s.fs.Store.Delete(s.ctx, rootKey)
	if _, _, err := s.r.FetchImage(s.ctx, old.Image.Fingerprint, t.TempDir()); err == nil || !strings.Contains(err.Error(), rootKey+" is not in the store") {
		t.Errorf("a missing root: %v", err)
	}
	images, err := s.r.ApplianceImages(s.ctx)
	if err != nil || len(images) != 3 {
		t.Errorf("ApplianceImages = %+v, %v", images, err)
	}
}
