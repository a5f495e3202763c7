package mirror

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/image"
	"github.com/incus-appliance/registry/internal/image/imagetest"
	"github.com/incus-appliance/registry/internal/registry"
)

// A mirror and publishers writing the same registry at once: every
// version of each lands (conditional commits, retried on conflict).
func TestMirrorAndPublishersAtOnce(t *testing.T) {
	src, tree := newSource(8, 2)
	r, s := newRegistry()
	var reqs []registry.PublishRequest
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		name := fmt.Sprintf("app%d", i)
		created := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
		meta := imagetest.WriteMetadata(t, dir, imagetest.DefaultSpec(name, created))
		root := imagetest.WriteSquashfs(t, dir, 64<<10+i, int64(i))
		im, err := image.Inspect(ctx, meta, root, image.Options{})
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, registry.PublishRequest{Image: im.CatalogImage(name, nil, nil), MetadataPath: meta, RootPath: root})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Publish(ctx, req)
			errs <- err
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		rep, err := Run(ctx, src, r, Options{})
		if err == nil && len(rep.Failed) > 0 {
			err = fmt.Errorf("failed: %+v", rep.Failed)
		}
		errs <- err
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c := readCatalog(t, s)
	if len(c.Products) != len(tree.Catalog.Products)+3 {
		t.Errorf("products = %d, want %d", len(c.Products), len(tree.Catalog.Products)+3)
	}
	mustVerify(t, r)
}
