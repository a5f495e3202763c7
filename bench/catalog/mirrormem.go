package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/miniotest"
	"github.com/incus-appliance/registry/internal/simplestreams/sstest"
)

// mirrorMemory mirrors one version with a -root-size root out of a ~20 MB
// catalog (a directory source, a MinIO destination) and reports the
// mirror's peak RSS; target < 100 MB.
func mirrorMemory(dir, bin string, srv *miniotest.Server) int {
	src := filepath.Join(dir, "mirror-src")
	tree := sstest.Build(sstest.Spec{Products: 2500, Versions: 3, FileSize: 64, NoFiles: true})
	// One product gets real files, the root -root-size bytes long.
	pk := tree.Catalog.ProductKeys()[0]
	p := tree.Catalog.Products[pk]
	vk := p.VersionKeys()[0]
	v := &catalog.Version{Items: map[string]catalog.Item{}}
	meta := []byte("metadata tarball of the big image")
	metaPath, rootPath := "images/big/incus.tar.xz", "images/big/rootfs.squashfs"
	write := func(path string, r io.Reader) (string, int64) {
		full := filepath.Join(src, path)
		check(os.MkdirAll(filepath.Dir(full), 0o755), "mkdir")
		f, err := os.Create(full)
		check(err, "create")
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(f, h), r)
		check(err, "write "+path)
		return hex.EncodeToString(h.Sum(nil)), n
	}
	log.Printf("writing a %d-byte root", *rootSize)
	msum, msize := write(metaPath, bytesReader(meta))
	rsum, rsize := write(rootPath, io.LimitReader(pattern{}, *rootSize))
	comb := sha256.New()
	comb.Write(meta)
	f, _ := os.Open(filepath.Join(src, rootPath))
	io.Copy(comb, f)
	f.Close()
	v.Items["incus.tar.xz"] = catalog.Item{FType: catalog.FTypeIncusMeta, Path: metaPath, SHA256: msum, Size: msize, CombinedSquashfsSHA256: hex.EncodeToString(comb.Sum(nil))}
	v.Items["squashfs"] = catalog.Item{FType: catalog.FTypeSquashfs, Path: rootPath, SHA256: rsum, Size: rsize}
	p.Versions = map[string]*catalog.Version{vk: v}
	data := tree.Catalog.Marshal()
	check(os.MkdirAll(filepath.Join(src, "streams/v1"), 0o755), "mkdir")
	check(os.WriteFile(filepath.Join(src, catalog.ImagesPath), data, 0o644), "write")
	check(os.WriteFile(filepath.Join(src, catalog.IndexPath), catalog.BuildIndex(tree.Catalog.ProductKeys()).Marshal(), 0o644), "write")
	check(srv.CreateBucket(contextBG(), "mirrormem"), "bucket")
	log.Printf("mirroring (catalog %.1f MB)", float64(len(data))/(1<<20))
	if d := os.Getenv("BENCH_KEEP_SOURCE"); d != "" {
		check(os.Rename(src, d), "keep source")
		src = d
	}
	r := run(srv.Env(), bin+"/publish", "mirror", src, "--bucket", "s3://mirrormem", "--filter", "product="+pk, "--json", "--no-progress")
	fmt.Println()
	fmt.Println("| catalog | root | mirror wall | CPU | peak RSS | exit |")
	fmt.Println("|---|---|---|---|---|---|")
	fmt.Printf("| %.1f MB | %.2f GiB | %s | %s | %.0f MB | %d |\n", float64(len(data))/(1<<20), float64(*rootSize)/(1<<30), ms(r.wall), ms(r.cpu), r.rssMB, r.code)
	if r.code != 0 {
		log.Printf("mirror: %.500s", r.out)
		return 1
	}
	ok := r.rssMB < 100
	v2 := "met"
	if !ok {
		v2 = "MISSED"
	}
	fmt.Printf("target mirror peak RSS < 100 MB: %s (%.0f MB)\n", v2, r.rssMB)
	if !ok {
		return 1
	}
	return 0
}

// pattern is an endless, not very compressible byte stream.
type pattern struct{}

func (pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(i*131 + i>>8)
	}
	return len(b), nil
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}
