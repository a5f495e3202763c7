package edgeproxy

import (
	"bytes"
	"testing"

	"github.com/incus-appliance/registry/internal/filetest"
)

// Any key under images/ is served, whatever the layout of the tree:
// incus-simplestreams' images/<fp>.incus.tar.xz and
// images.linuxcontainers.org's paths with ':' in the version.
func TestServesEveryImagesLayout(t *testing.T) {
	dir, _ := testRegistry(t, 1<<10)
	keys := []string{
		"images/" + "8b3181b82f9bd0fcc65de4039bc7e08b88eb089ade17cc13c89400e143e6f697" + ".incus.tar.xz",
		"images/debian/bookworm/amd64/default/20261129_05:24/rootfs.squashfs",
		"images/debian/bookworm/amd64/default/20261129_05:24/20261128_05:24.vcdiff",
		"images/a+b~c@d=e.img",
	}
	files := map[string][]byte{}
	for i, k := range keys {
		files[k] = []byte{byte(i), 1, 2, 3}
	}
	filetest.WriteTree(t, dir, files)
	p := startProxy(t, dirOrigin(t, dir), nil)
	for i, k := range keys {
		resp, body := p.do(t, "GET", "/"+k)
		if resp.StatusCode != 200 || !bytes.Equal(body, []byte{byte(i), 1, 2, 3}) {
			t.Errorf("GET /%s: %d, %d bytes; want 200 and the file", k, resp.StatusCode, len(body))
		}
	}
}
