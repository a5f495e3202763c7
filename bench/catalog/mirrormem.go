package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/miniotest"
	"github.com/incus-appliance/registry/internal/simplestreams/sstest"
)

// mirrorMemory runs the mirror memory cases and exits 1 when one misses
// its target:
//   - one version with a -root-size root out of a ~20 MB catalog (a
//     directory source, a MinIO destination): peak RSS < 100 MB;
//   - a dry run of a catalog of 4 product files of ~66 MB each (a
//     directory source and destination): peak RSS < 350 MB (memory
//     follows the largest file, not the sum);
//   - a source whose index.json is 200 MB: refused, peak RSS reported.
func mirrorMemory(dir, bin string, srv *miniotest.Server) int {
	fmt.Println()
	fmt.Println("| case | catalog | mirror wall | CPU | peak RSS | exit | target |")
	fmt.Println("|---|---|---|---|---|---|---|")
	code := 0
	for _, c := range []func(dir, bin string, srv *miniotest.Server) bool{mirrorBigRoot, mirrorWideCatalog, mirrorHugeIndex} {
		if !c(dir, bin, srv) {
			code = 1
		}
	}
	return code
}

// memRow prints one case's row; it returns ok.
func memRow(name string, catalogMB float64, r proc, target string, ok bool) bool {
	verdict := "met"
	if !ok {
		verdict = "MISSED"
	}
	fmt.Printf("| %s | %.1f MB | %s | %s | %.0f MB | %d | %s: %s |\n", name, catalogMB, ms(r.wall), ms(r.cpu), r.rssMB, r.code, target, verdict)
	return ok
}

// mirrorWideCatalog dry-runs a mirror of a source whose index names 4
// product files of ~66 MB (a directory source and destination).
func mirrorWideCatalog(dir, bin string, _ *miniotest.Server) bool {
	src := filepath.Join(dir, "mirror-wide")
	log.Printf("wide catalog: building 4 product files")
	tree := sstest.Build(sstest.Spec{Products: *wideProducts, Versions: 3, FileSize: 64, NoFiles: true})
	files := layOut(tree.Catalog, 4)
	tree = nil
	total := 0
	for path, data := range files {
		full := filepath.Join(src, path)
		check(os.MkdirAll(filepath.Dir(full), 0o755), "mkdir")
		check(os.WriteFile(full, data, 0o644), "write")
		if path != catalog.IndexPath && path != catalog.ImagesPath {
			total += len(data)
			log.Printf("wide catalog: %s is %.1f MB", path, float64(len(data))/(1<<20))
		}
	}
	files = nil
	// Into an empty directory: a dry run checks every file of the source
	// against the destination, half a million stat calls here.
	dest := filepath.Join(dir, "mirror-wide-dest")
	check(os.MkdirAll(dest, 0o755), "mkdir")
	log.Printf("wide catalog: mirror --dry-run (%.0f MB of product files)", float64(total)/(1<<20))
	r := run(nil, bin+"/publish", "mirror", src, "--bucket", dest, "--dry-run", "--json", "--no-progress")
	if r.code != 0 {
		log.Printf("mirror: %.500s", r.out)
	}
	return memRow("4 product files, --dry-run", float64(total)/(1<<20), r, "RSS < 350 MB", r.code == 0 && r.rssMB < 350)
}

// mirrorHugeIndex mirrors a source whose index.json is 200 MB (one entry
// listing millions of products): it must be refused.
func mirrorHugeIndex(dir, bin string, srv *miniotest.Server) bool {
	src := filepath.Join(dir, "mirror-huge-index")
	check(os.MkdirAll(filepath.Join(src, "streams/v1"), 0o755), "mkdir")
	f, err := os.Create(filepath.Join(src, catalog.IndexPath))
	check(err, "create")
	w := bufio.NewWriter(f)
	fmt.Fprint(w, `{"format":"index:1.0","index":{"images":{"datatype":"image-downloads","format":"products:1.0","path":"streams/v1/images.json","products":[`)
	for i := 0; ; i++ {
		if i > 0 {
			w.WriteByte(',')
		}
		fmt.Fprintf(w, `"product-%012d:amd64"`, i)
		if w.Size() > 0 && i%1000 == 0 {
			check(w.Flush(), "write")
			if st, _ := f.Stat(); st.Size() >= 200<<20 {
				break
			}
		}
	}
	fmt.Fprint(w, "]}}}\n")
	check(w.Flush(), "write")
	st, err := f.Stat()
	check(err, "stat")
	check(f.Close(), "close")
	check(os.WriteFile(filepath.Join(src, catalog.ImagesPath), catalog.New().Marshal(), 0o644), "write")
	check(srv.CreateBucket(contextBG(), "mirrorindex"), "bucket")
	log.Printf("huge index: mirror (index.json %.0f MB)", float64(st.Size())/(1<<20))
	r := run(srv.Env(), bin+"/publish", "mirror", src, "--bucket", "s3://mirrorindex", "--no-progress")
	refused := r.code != 0 && strings.Contains(r.out, "index.json")
	if !refused {
		log.Printf("mirror of a 200 MB index.json: exit %d: %.300s", r.code, r.out)
	}
	return memRow("200 MB index.json", float64(st.Size())/(1<<20), r, "refused", refused)
}

// mirrorBigRoot mirrors one version with a -root-size root out of a ~20 MB
// catalog (a directory source, a MinIO destination).
func mirrorBigRoot(dir, bin string, srv *miniotest.Server) bool {
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
	if r.code != 0 {
		log.Printf("mirror: %.500s", r.out)
	}
	return memRow(fmt.Sprintf("%.2f GiB root", float64(*rootSize)/(1<<30)), float64(len(data))/(1<<20), r, "RSS < 100 MB", r.code == 0 && r.rssMB < 100)
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
