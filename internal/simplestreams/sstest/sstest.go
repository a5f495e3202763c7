// Package sstest builds SimpleStreams trees shaped like
// images.linuxcontainers.org's for tests and benchmarks: version keys and
// paths with ':', split images with squashfs, root.tar.xz and disk-kvm.img
// roots, squashfs.vcdiff deltas against the previous version, an
// lxd_combined.tar.gz item and requirements. A Tree is also an
// http.Handler serving its files, as such a server does; HTTPSSource
// serves one (or any handler) over HTTPS to a source that trusts it.
package sstest

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/simplestreams"
)

// Spec sizes a tree.
type Spec struct {
	// Products and Versions per product.
	Products, Versions int
	// FileSize is the size of each file (small for catalog benchmarks).
	FileSize int
	// NoFiles leaves the file contents out (a catalog-only tree: Files is
	// empty; items still have sizes and digests).
	NoFiles bool
}

// Tree is a built tree: every file by path, index.json and images.json
// included, and the catalog.
type Tree struct {
	Files   map[string][]byte
	Catalog *catalog.Catalog
}

var (
	oses     = []string{"debian", "ubuntu", "alpine", "fedora", "archlinux", "centos", "rockylinux", "opensuse", "gentoo", "voidlinux"}
	arches   = []string{"amd64", "arm64", "armhf", "riscv64", "ppc64el", "s390x"}
	variants = []string{"default", "cloud"}
)

// Build returns a tree of spec.Products products. Product i is
// OS:RELEASE:ARCH:VARIANT as images.linuxcontainers.org names them; version
// keys are YYYYMMDD_hh:mm, one day apart.
func Build(spec Spec) *Tree {
	t := &Tree{Files: map[string][]byte{}, Catalog: catalog.New()}
	t0 := time.Date(2026, 11, 1, 5, 24, 0, 0, time.UTC)
	for i := 0; i < spec.Products; i++ {
		os, arch, variant := oses[i%len(oses)], arches[(i/len(oses))%len(arches)], variants[(i/(len(oses)*len(arches)))%len(variants)]
		release := fmt.Sprintf("r%d", i/(len(oses)*len(arches)*len(variants)))
		pk := fmt.Sprintf("%s:%s:%s:%s", os, release, arch, variant)
		p := &catalog.Product{
			Aliases: fmt.Sprintf("%s/%s/%s", os, release, variant), Arch: arch, OS: os, Release: release,
			ReleaseTitle: release, Variant: variant, Versions: map[string]*catalog.Version{},
		}
		if variant == "cloud" {
			p.Requirements = map[string]string{"secureboot": "false"}
		}
		var prev string
		for v := 0; v < spec.Versions; v++ {
			vk := t0.Add(time.Duration(v) * 24 * time.Hour).Format("20060102_15:04")
			dir := fmt.Sprintf("images/%s/%s/%s/%s/%s/", os, release, arch, variant, vk)
			file := func(name string) (string, []byte) {
				b := make([]byte, spec.FileSize)
				copy(b, fmt.Sprintf("%s%s %d", dir, name, i))
				for j := 64; j < len(b); j++ {
					b[j] = byte(j*7 + i + v)
				}
				return dir + name, b
			}
			item := func(ftype, name string) (catalog.Item, []byte) {
				path, b := file(name)
				if !spec.NoFiles {
					t.Files[path] = b
				}
				return catalog.Item{FType: ftype, Path: path, SHA256: digest.Of(b), Size: int64(len(b))}, b
			}
			meta, mb := item(catalog.FTypeIncusMeta, "incus.tar.xz")
			sq, sb := item(catalog.FTypeSquashfs, "rootfs.squashfs")
			rx, rb := item(catalog.FTypeRootTarXZ, "rootfs.tar.xz")
			disk, db := item(catalog.FTypeDiskKVMImg, "disk.qcow2")
			meta.CombinedSquashfsSHA256 = digest.Of(mb, sb)
			meta.CombinedRootXZSHA256 = digest.Of(mb, rb)
			meta.CombinedSHA256 = meta.CombinedRootXZSHA256
			meta.CombinedDiskKVMImgSHA256 = digest.Of(mb, db)
			lxd := meta
			lxd.FType = catalog.FTypeLXDMeta
			items := map[string]catalog.Item{
				"incus.tar.xz": meta, "lxd.tar.xz": lxd, "root.tar.xz": rx, "squashfs": sq, "disk-kvm.img": disk,
			}
			lxdMeta := items["lxd.tar.xz"]
			lxdMeta.Path = meta.Path // the same file, as upstream does
			items["lxd.tar.xz"] = lxdMeta
			if i%3 == 0 {
				lc, _ := item("lxd_combined.tar.gz", "lxd.tar.gz")
				items["lxd_combined.tar.gz"] = lc
			}
			if prev != "" {
				d, _ := item("squashfs.vcdiff", prev+".vcdiff")
				d.DeltaBase = prev
				items["delta-"+prev] = d
			}
			p.Versions[vk] = &catalog.Version{Items: items}
			prev = vk
		}
		t.Catalog.Products[pk] = p
	}
	t.Files[catalog.ImagesPath] = t.Catalog.Marshal()
	t.Files[catalog.IndexPath] = catalog.BuildIndex(t.Catalog.ProductKeys()).Marshal()
	return t
}

// ServeHTTP serves the tree's files by path (GET and HEAD, with their
// length); anything else is a 404.
func (t *Tree) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, ok := t.Files[strings.TrimPrefix(r.URL.Path, "/")]
	if !ok || r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodGet {
		_, _ = w.Write(b)
	}
}

// HTTPSSource serves h over HTTPS under prefix (a path such as "/mirror",
// or "") for the test, and returns a source for it that trusts the test
// certificate.
func HTTPSSource(t testing.TB, prefix string, h http.Handler) *simplestreams.HTTPS {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(prefix+"/", http.StripPrefix(prefix, h))
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	src, err := simplestreams.NewHTTPS(srv.URL + prefix + "/")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	src.Client.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
	return src
}
