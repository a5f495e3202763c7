package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
)

// The scenario several tests read through different fronts (a MinIO
// bucket, edgeproxy): two versions of nginx, the second with the alias
// web.

// publishNginxAndWeb publishes v (two versions of nginx) with publish's
// flags (--bucket ...) and environment, the second with the alias web.
func publishNginxAndWeb(t testing.TB, env []string, v []sample, flags ...string) {
	t.Helper()
	publishSample(t, env, v[0], flags...)
	publishSample(t, env, v[1], append(flags, "--alias", "web")...)
}

// wantNginxAndWeb checks what c sees of it on remote: two images, the
// newest with the aliases nginx and web (and their /amd64 forms), web
// resolving to it, and an export of nginx writing it. It returns how long
// the export took.
func (c *client) wantNginxAndWeb(t testing.TB, remote string, v []sample) (export time.Duration) {
	t.Helper()
	if got := c.list(t, remote); len(got) != 2 || strings.Join(got[v[1].fp], ",") != "nginx,nginx/amd64,web,web/amd64" {
		t.Errorf("%s: image list = %v, want 2 images, the newest as nginx and web", remote, got)
	}
	c.wantInfo(t, remote+":web", v[1].fp)
	start := time.Now()
	c.wantExport(t, remote+":nginx", v[1].fp)
	return time.Since(start)
}

// wantTreeListed checks that got (a client's image list) holds the
// squashfs image of every version of the products of built (an sstest
// tree) of arch ("": all), and returns one of their fingerprints.
func wantTreeListed(t testing.TB, got map[string][]string, built *catalog.Catalog, arch string) (fp string) {
	t.Helper()
	for pk, p := range built.Products {
		if arch != "" && p.Arch != arch {
			continue
		}
		for _, v := range p.Versions {
			for _, it := range v.Items {
				if it.FType == catalog.FTypeIncusMeta && it.CombinedSquashfsSHA256 != "" {
					if _, ok := got[it.CombinedSquashfsSHA256]; !ok {
						t.Errorf("the client does not list %s's squashfs image %s", pk, it.CombinedSquashfsSHA256[:12])
					}
					fp = it.CombinedSquashfsSHA256
				}
			}
		}
	}
	if fp == "" {
		t.Fatalf("the tree has no squashfs image of arch %q", arch)
	}
	return fp
}
