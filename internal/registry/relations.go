package registry

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/relations"
)

// The relation rules (internal/relations) kept over the whole catalog:
// a publish whose relation nothing published satisfies is refused
// (relations.UnmetError); a remove or prune that takes away the last
// provider a published consumer allows is refused unless forced
// (relations.BreakError), and when forced says what breaks; verify
// reports what is unsatisfied. They are checked on the catalog as read
// before the change: a provider removed by another writer between that
// read and the change's commit is not seen (verify reports it).

// checkPublishRelations refuses img, about to be added to whole (the
// whole catalog as read), when one of its relations is satisfied by no
// image of whole nor by img itself.
func checkPublishRelations(whole *catalog.Catalog, img catalog.Image) error {
	if img.Custom[relations.Requires] == "" {
		return nil
	}
	after := whole.Clone()
	add, err := after.Add(img)
	if err != nil {
		return err
	}
	images, _ := after.ApplianceImages()
	var unmet []relations.Unmet
	for _, u := range relations.Unsatisfied(images) {
		if u.Consumer.Product == add.Product && u.Consumer.Key == add.Version {
			unmet = append(unmet, u)
		}
	}
	if len(unmet) > 0 {
		return &relations.UnmetError{Unmet: unmet}
	}
	return nil
}

// breaks returns what change, applied to a copy of whole, leaves
// unsatisfied that whole did not (relations.Broken).
func breaks(whole *catalog.Catalog, change func(c *catalog.Catalog) error) ([]relations.Unmet, error) {
	before, _ := whole.ApplianceImages()
	after := whole.Clone()
	if err := change(after); err != nil {
		return nil, err
	}
	now, _ := after.ApplianceImages()
	return relations.Broken(before, now), nil
}

// checkBreaks is breaks as a refusal: a relations.BreakError naming
// what change breaks unless force; forced, the descriptions of what it
// breaks (nil when nothing).
func checkBreaks(whole *catalog.Catalog, what string, force bool, change func(c *catalog.Catalog) error) ([]string, error) {
	broken, err := breaks(whole, change)
	if err != nil || len(broken) == 0 {
		return nil, err
	}
	if !force {
		return nil, &relations.BreakError{Change: what, Broken: broken}
	}
	var out []string
	for _, u := range broken {
		out = append(out, u.String())
	}
	return out, nil
}

// wholeCatalog reads the whole catalog (every product file joined).
func (r *Registry) wholeCatalog(ctx context.Context) (*catalog.Catalog, error) {
	l, root, files, err := r.readWhole(ctx)
	if err != nil {
		return nil, err
	}
	return l.Whole(root, files), nil
}

// pruneBreaks is checkBreaks for the versions a prune keeping keep drops.
func (r *Registry) pruneBreaks(ctx context.Context, keep int, force bool, now time.Time) ([]string, error) {
	if keep <= 0 {
		return nil, nil
	}
	whole, err := r.wholeCatalog(ctx)
	if err != nil {
		return nil, err
	}
	return checkBreaks(whole, "prune --keep "+strconv.Itoa(keep), force, func(c *catalog.Catalog) error {
		_, _, err := tidy(c, keep, now)
		return err
	})
}

// unsatisfied adds to rep what verify finds of the relation rules: a
// version whose relations do not parse, and each launchable consumer's
// relation nothing published satisfies.
func unsatisfied(c *catalog.Catalog, rep *VerifyReport) {
	images, problems := c.ApplianceImages()
	for _, p := range problems {
		rep.problem("relations: %s", p)
	}
	for _, u := range relations.Unsatisfied(images) {
		rep.problem("unsatisfied requirement: %s", u)
	}
}

// checkRelations is checkPublishRelations against the whole catalog:
// file (the product's catalog file, as read, img added or not) when it
// is the only one.
func (r *Registry) checkRelations(ctx context.Context, l layout, file *catalog.Catalog, img catalog.Image) error {
	if img.Custom[relations.Requires] == "" {
		return nil
	}
	whole := file
	if l.Count() > 1 {
		var err error
		if whole, err = r.wholeCatalog(ctx); err != nil {
			return err
		}
	}
	return checkPublishRelations(whole, img)
}

// ApplianceImages returns the published images that take part in
// relations, as the rules see them (catalog.ApplianceImages): what a
// release picks a consumer's providers from.
func (r *Registry) ApplianceImages(ctx context.Context) ([]relations.Image, error) {
	whole, err := r.wholeCatalog(ctx)
	if err != nil {
		return nil, err
	}
	images, _ := whole.ApplianceImages()
	return images, nil
}

// FetchImage writes the files of the published image fingerprint (its
// metadata tarball and its root) into dir, each checked against its
// catalog digest, and returns their paths: an image a gate launches.
func (r *Registry) FetchImage(ctx context.Context, fingerprint, dir string) (metadata, root string, err error) {
	whole, err := r.wholeCatalog(ctx)
	if err != nil {
		return "", "", err
	}
	pk, vk, ok := whole.FindFingerprint(fingerprint)
	if !ok {
		return "", "", fmt.Errorf("image %s is not published", fingerprint)
	}
	for _, vi := range whole.Products[pk].Versions[vk].Images() {
		if vi.Fingerprint != fingerprint {
			continue
		}
		if metadata, err = r.fetchItem(ctx, vi.Meta, dir); err != nil {
			return "", "", err
		}
		root, err = r.fetchItem(ctx, vi.Root, dir)
		return metadata, root, err
	}
	return "", "", fmt.Errorf("image %s: no files in %s version %s", fingerprint, pk, vk)
}

// fetchItem writes item's file into dir (fetchChecked): a file missing
// or damaged is an error naming it.
func (r *Registry) fetchItem(ctx context.Context, it catalog.Item, dir string) (string, error) {
	out := filepath.Join(dir, path.Base(it.Path))
	wrong, err := r.fetchChecked(ctx, it, out)
	if err == nil && wrong != "" {
		err = fmt.Errorf("%s %s", it.Path, wrong)
	}
	return out, err
}
