package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/store"
)

// claimInFlightError refuses a claim that a publish in flight makes from
// another catalog file. Two publishes claiming one alias at the same
// instant each see the other's claim: Publish then backs off and tries
// again, and the first to announce again wins.
type claimInFlightError struct {
	Alias, Arch string
	File        string // the catalog file of the other publish
}

func (e *claimInFlightError) Error() string {
	return fmt.Sprintf("alias %q on %s is being claimed by a publish in flight in %s: choose another alias, or try again when it is done", e.Alias, e.Arch, e.File)
}

// checkClaims refuses alias claims (catalog.Layout.Claims) that a catalog
// file other than key has in the index (ix, or index.json read now). A claim the other file no longer backs (a publish
// killed after claiming, whose intent has expired; a remove killed before
// its index update) is stale: that file's entry is rebuilt from the file
// and the check runs again.
func (r *Registry) checkClaims(ctx context.Context, ix *catalog.Index, l layout, key string, claims []string) error {
	if len(claims) == 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		if ix == nil {
			data, _, err := r.readObject(ctx, catalog.IndexPath)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if ix, err = catalog.ParseIndex(data); err != nil {
				return err
			}
		}
		claim, other := ix.AliasClash(key, claims)
		if claim == "" {
			return nil
		}
		alias, arch, _ := strings.Cut(claim, "@")
		c, _, err := r.readCatalogAt(ctx, other)
		if err != nil {
			return err
		}
		if owner := c.AliasOwner(alias, arch, ""); owner != "" {
			return &catalog.AliasOwnedError{Alias: alias, Arch: arch, Owner: owner}
		}
		if attempt >= 3 || slices.Contains(c.ClaimedAliases(r.now()), claim) {
			return &claimInFlightError{Alias: alias, Arch: arch, File: other}
		}
		if _, ix, err = r.syncIndex(ctx, l, other, nil); err != nil {
			return err
		}
	}
}

// checkPublishedElsewhere refuses an image that a product in another
// catalog file than key already has (catalog.Add checks key's own): a
// fingerprint is published once (the container image's, and its VM
// disk's). The first file of each (the metadata, the disk) is stored as
// soon as anyone published (or tried to publish) it, so only then are the
// other files read. Two publishes of one image under two names at the
// same instant can still both land; verify reports it.
func (r *Registry) checkPublishedElsewhere(ctx context.Context, l layout, key string, img catalog.Image, product string) error {
	if len(l.Others(key)) == 0 {
		return nil
	}
	meta, _ := catalog.ImagePaths(img.Fingerprint, img.RootKind)
	first := map[string]string{img.Fingerprint: meta}
	if img.VM != nil {
		first[img.VM.Fingerprint] = img.VM.Path()
	}
	var c *catalog.Catalog
	for _, fp := range slices.Sorted(maps.Keys(first)) {
		if _, err := r.Store.Stat(ctx, first[fp]); errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return fmt.Errorf("stat %s: %w", first[fp], err)
		}
		if c == nil {
			var err error
			if c, _, err = r.readCatalog(ctx); err != nil {
				return err
			}
		}
		if pk, vk, ok := c.FindFingerprint(fp); ok && pk != product {
			return fmt.Errorf("image %s is already published as product %q version %s: remove it there first", fp, pk, vk)
		}
	}
	return nil
}
