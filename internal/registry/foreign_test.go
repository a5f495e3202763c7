package registry

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
)

// editCatalog rewrites images.json the way another tool does: parse, edit,
// write back unconditionally (and, like incus-simplestreams, without
// registry_state when dropState).
func editCatalog(t *testing.T, s store.Store, dropState bool, edit func(c *catalog.Catalog)) {
	t.Helper()
	rewriteCatalog(t, s, func(js string) string {
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
	r, fs := newTestRegistry()
	ctx := context.Background()
	old := makeImage(t, "nginx", t0, 1)
	mustPublish(t, r, old)
	mustPublish(t, r, makeImage(t, "nginx", t0.Add(time.Hour), 2))
	now := time.Now().Add(3 * DefaultGrace) // the files are old
	r.Now = func() time.Time { return now }
	editCatalog(t, fs.Store, true, func(c *catalog.Catalog) {
		delete(c.Products["nginx:amd64"].Versions, catalog.VersionKey(t0))
	})

	rep := mustVerify(t, r)
	all := strings.Join(rep.Warnings, "\n")
	if !strings.Contains(all, "has no registry_state") || !strings.Contains(all, "2 unreferenced files under images/ have no retirement record") {
		t.Errorf("verify warnings = %q, want the missing registry_state and the 2 unaccounted files", rep.Warnings)
	}

	res, err := r.Prune(ctx, PruneOptions{Grace: DefaultGrace})
	if err != nil || len(res.Deleted) != 0 {
		t.Fatalf("prune right after the foreign rewrite = %+v, %v; want nothing deleted", res, err)
	}
	c := readCatalog(t, r)
	for _, p := range old.Image.Paths() {
		if _, _, err := fs.Store.Get(ctx, p); err != nil {
			t.Errorf("%s left the catalog just now but was deleted: %v", p, err)
		}
		if at := c.State.Retired[p]; !at.Equal(now.UTC().Truncate(time.Second)) {
			t.Errorf("retired[%s] = %v, want %v", p, at, now)
		}
	}
	r.Now = func() time.Time { return now.Add(DefaultGrace - time.Minute) }
	if res, err := r.Prune(ctx, PruneOptions{Grace: DefaultGrace}); err != nil || len(res.Deleted) != 0 {
		t.Fatalf("prune a minute before the grace ends = %+v, %v", res, err)
	}
	r.Now = func() time.Time { return now.Add(DefaultGrace) }
	res, err = r.Prune(ctx, PruneOptions{Grace: DefaultGrace})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range old.Image.Paths() {
		if !slices.Contains(res.Deleted, p) {
			t.Errorf("prune after the full grace did not delete %s: %+v", p, res)
		}
	}
	mustVerify(t, r)
}

// An image without an lxd.tar.xz item (incus-simplestreams writes none) is
// a warning, and a problem with Strict.
func TestVerifyMissingLXDItemIsAWarning(t *testing.T) {
	r, fs := newTestRegistry()
	mustPublish(t, r, makeImage(t, "nginx", t0, 1))
	editCatalog(t, fs.Store, false, func(c *catalog.Catalog) {
		for _, v := range c.Products["nginx:amd64"].Versions {
			delete(v.Items, catalog.FTypeLXDMeta)
		}
	})
	rep := mustVerify(t, r)
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "LXD clients will not see it") {
		t.Errorf("warnings = %q, want the missing lxd.tar.xz item", rep.Warnings)
	}
	rep, err := r.VerifyWith(context.Background(), VerifyOptions{Strict: true})
	if err != nil || rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "LXD clients will not see it") {
		t.Errorf("strict verify = %+v, %v; want the missing lxd.tar.xz item as a problem", rep, err)
	}
}

// What `incus-simplestreams remove` leaves of one of our versions (root item
// and file gone, the combined hash blanked, the lxd.tar.xz item kept) is a
// warning, and prune drops it and retires its metadata file.
func TestPruneDropsVersionShells(t *testing.T) {
	r, fs := newTestRegistry()
	ctx := context.Background()
	gone := makeImage(t, "nginx", t0, 1)
	mustPublish(t, r, gone)
	mustPublish(t, r, makeImage(t, "nginx", t0.Add(time.Hour), 2))
	editCatalog(t, fs.Store, true, func(c *catalog.Catalog) {
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
	rep := mustVerify(t, r)
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "has metadata but no root item") {
		t.Errorf("warnings = %q, want the version shell", rep.Warnings)
	}
	res, err := r.Prune(ctx, PruneOptions{Grace: DefaultGrace})
	if err != nil || len(res.Removed) != 1 || res.Removed[0].Version != catalog.VersionKey(t0) {
		t.Fatalf("prune = %+v, %v; want the shell version removed", res, err)
	}
	meta := gone.Image.Paths()[0]
	if c := readCatalog(t, r); c.Products["nginx:amd64"].Versions[catalog.VersionKey(t0)] != nil || c.State.Retired[meta].IsZero() {
		t.Errorf("after prune: catalog %s", c.Marshal())
	}
	if rep := mustVerify(t, r); len(rep.Warnings) != 0 {
		t.Errorf("warnings after prune = %q", rep.Warnings)
	}
}

// VerifyWith NoFiles checks presence and size from a listing, reading
// nothing.
func TestVerifyNoFiles(t *testing.T) {
	r, fs := newTestRegistry()
	req := makeImage(t, "nginx", t0, 1)
	mustPublish(t, r, req)
	rep, err := r.VerifyWith(context.Background(), VerifyOptions{NoFiles: true})
	if err != nil || !rep.OK() || rep.BytesChecked != 0 || rep.Images != 1 || rep.Files != 2 {
		t.Fatalf("verify --no-files = %+v, %v", rep, err)
	}
	root := req.Image.Paths()[1]
	fs.Store.Put(context.Background(), root, strings.NewReader("short"), 5, store.PutOptions{})
	rep, err = r.VerifyWith(context.Background(), VerifyOptions{NoFiles: true})
	if err != nil || rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "has 5 bytes") {
		t.Fatalf("verify --no-files after truncating the root = %+v, %v", rep, err)
	}
}
