package registry

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
)

// foreignEdit rewrites the catalog files holding products the way another
// tool does: parse, edit, write back unconditionally (and, like
// incus-simplestreams, without registry_state when dropState).
func (s *scene) foreignEdit(dropState bool, edit func(c *catalog.Catalog)) {
	t := s.t
	t.Helper()
	rewriteCatalog(t, s.fs.Store, func(js string) string {
		c, err := catalog.Parse([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Products) == 0 {
			return js // the root or an empty file of a sharded registry
		}
		edit(c)
		if dropState {
			c.State = nil
		}
		return string(c.Marshal())
	})
}

// Another tool removes a version and drops registry_state: the version's
// files left the catalog just now although they were written hours ago.
// Prune records them as retired now and waits the full grace; verify says
// what changed behind publish's back.
func TestPruneAfterForeignRewriteWaitsFullGrace(t *testing.T) {
	s := newScene(t)
	old, _ := s.twoVersions()
	now := time.Now().Add(3 * DefaultGrace) // the files are old
	s.at(func() time.Time { return now })
	s.foreignEdit(true, func(c *catalog.Catalog) {
		delete(c.Products["nginx:amd64"].Versions, catalog.VersionKey(t0))
	})

	rep := mustVerify(t, s.r)
	if all := warnings(rep); !strings.Contains(all, "has no registry_state") || !strings.Contains(all, "2 unreferenced files under images/ have no retirement record") {
		t.Errorf("verify warnings = %q, want the missing registry_state and the 2 unaccounted files", rep.Warnings)
	}

	if res := s.prune(PruneOptions{Grace: DefaultGrace}); len(res.Deleted) != 0 {
		t.Fatalf("prune right after the foreign rewrite = %+v; want nothing deleted", res)
	}
	c := readCatalog(t, s.r)
	for _, p := range old.Image.Paths() {
		if !s.stored(p) {
			t.Errorf("%s left the catalog just now but was deleted", p)
		}
		if at := c.State.Retired[p]; !at.Equal(now.UTC().Truncate(time.Second)) {
			t.Errorf("retired[%s] = %v, want %v", p, at, now)
		}
	}
	s.at(func() time.Time { return now.Add(DefaultGrace - time.Minute) })
	if res := s.prune(PruneOptions{Grace: DefaultGrace}); len(res.Deleted) != 0 {
		t.Fatalf("prune a minute before the grace ends = %+v", res)
	}
	s.at(func() time.Time { return now.Add(DefaultGrace) })
	res := s.prune(PruneOptions{Grace: DefaultGrace})
	for _, p := range old.Image.Paths() {
		if !slices.Contains(res.Deleted, p) {
			t.Errorf("prune after the full grace did not delete %s: %+v", p, res)
		}
	}
	mustVerify(t, s.r)
}

// An image without an lxd.tar.xz item (incus-simplestreams writes none) is
// a warning, and a problem with Strict.
func TestVerifyMissingLXDItemIsAWarning(t *testing.T) {
	s := newScene(t)
	s.publish("nginx", t0, 1)
	s.foreignEdit(false, func(c *catalog.Catalog) {
		for _, v := range c.Products["nginx:amd64"].Versions {
			delete(v.Items, catalog.FTypeLXDMeta)
		}
	})
	if rep := mustVerify(t, s.r); !strings.Contains(warnings(rep), "LXD clients will not see it") {
		t.Errorf("warnings = %q, want the missing lxd.tar.xz item", rep.Warnings)
	}
	if rep := s.verifyWith(VerifyOptions{Strict: true}); rep.OK() || !strings.Contains(problems(rep), "LXD clients will not see it") {
		t.Errorf("strict verify = %+v; want the missing lxd.tar.xz item as a problem", rep)
	}
}

// What `incus-simplestreams remove` leaves of one of our versions (root item
// and file gone, the combined hash blanked, the lxd.tar.xz item kept) is a
// warning, and prune drops it and retires its metadata file.
func TestPruneDropsVersionShells(t *testing.T) {
	s := newScene(t)
	gone, _ := s.twoVersions()
	s.foreignEdit(true, func(c *catalog.Catalog) {
		v := c.Products["nginx:amd64"].Versions[catalog.VersionKey(t0)]
		for k, it := range v.Items {
			if it.FType == catalog.FTypeSquashfs {
				delete(v.Items, k)
			}
			if it.FType == catalog.FTypeIncusMeta {
				it.CombinedSquashfsSHA256 = ""
				v.Items[k] = it
			}
		}
	})
	if rep := mustVerify(t, s.r); !strings.Contains(warnings(rep), "has metadata but no root item") {
		t.Errorf("warnings = %q, want the version shell", rep.Warnings)
	}
	if res := s.prune(PruneOptions{Grace: DefaultGrace}); len(res.Removed) != 1 || res.Removed[0].Version != catalog.VersionKey(t0) {
		t.Fatalf("prune = %+v; want the shell version removed", res)
	}
	meta := gone.Image.Paths()[0]
	if c := readCatalog(t, s.r); c.Products["nginx:amd64"].Versions[catalog.VersionKey(t0)] != nil || c.State.Retired[meta].IsZero() {
		t.Errorf("after prune: catalog %s", c.Marshal())
	}
	if rep := mustVerify(t, s.r); len(rep.Warnings) != 0 {
		t.Errorf("warnings after prune = %q", rep.Warnings)
	}
}

// VerifyWith NoFiles checks presence and size from a listing, reading
// nothing.
func TestVerifyNoFiles(t *testing.T) {
	s := newScene(t)
	req := s.publish("nginx", t0, 1)
	if rep := s.verifyWith(VerifyOptions{NoFiles: true}); !rep.OK() || rep.BytesChecked != 0 || rep.Images != 1 || rep.Files != 2 {
		t.Fatalf("verify --no-files = %+v", rep)
	}
	s.replace(req.Image.Paths()[1], []byte("short"))
	if rep := s.verifyWith(VerifyOptions{NoFiles: true}); rep.OK() || !strings.Contains(problems(rep), "has 5 bytes") {
		t.Fatalf("verify --no-files after truncating the root = %+v", rep)
	}
}
