// Command catalog benchmarks the registry at the scale of
// images.linuxcontainers.org: a synthetic catalog of ~1,500 products × 3
// versions (4 to 6 items each, internal/simplestreams/sstest) and one 10×
// larger. For each it reports:
//
//   - parse, merge one image (catalog.Add), marshal: in-process, median of
//     -runs;
//   - one publish committing a small image into a MinIO bucket holding that
//     catalog (the publish binary: wall time, CPU user+sys, peak RSS);
//   - `publish list` and `publish verify --no-files` on that bucket;
//   - a mirror of the catalog alone (`publish mirror` of a directory tree
//     whose versions the bucket already has: reads, parses, merges, sends 0
//     files);
//   - edgeproxy serving images.json from the bucket: requests/s with and
//     without Accept-Encoding: gzip (-conns concurrent HTTPS/1.1 clients,
//     -duration each).
//
// The 10× catalog is measured twice: as one images.json, and split into
// -shards product files (publish --catalog-shards), where parse, merge,
// marshal and edgeproxy are measured on the largest file.
//
// Targets: at 10× in files, one publish's CPU < 200 ms and its peak RSS <
// 200 MB; in one file, cost growing linearly (10× time < 15× the 1×
// time). It exits 1 when a target is missed.
//
// -mirror-mem runs the mirror memory benchmarks instead (mirrormem.go):
// mirroring a 2 GiB root and a ~20 MB catalog from a directory into MinIO
// (peak RSS < 100 MB), a dry run of 4 product files of ~66 MB (peak RSS <
// 350 MB), a 200 MB index.json (refused).
//
// -signing measures what signing the catalog costs instead (signing.go):
// publishes with and without a key, publish sign, verify --keyring.
//
//	go run ./bench/catalog [-products 1500] [-versions 3] [-runs 3] [-duration 3s] [-mirror-mem | -signing]
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/miniotest"
	"github.com/incus-appliance/registry/internal/simplestreams/sstest"
)

var (
	products  = flag.Int("products", 1500, "products at 1× scale")
	versions  = flag.Int("versions", 3, "versions per product")
	runs      = flag.Int("runs", 3, "runs of each in-process measurement (median)")
	duration  = flag.Duration("duration", 3*time.Second, "length of each edgeproxy load run")
	conns     = flag.Int("conns", 8, "concurrent edgeproxy clients")
	mirrorMem = flag.Bool("mirror-mem", false, "run the mirror memory benchmark (2 GiB root, ~20 MB catalog) instead")
	rootSize  = flag.Int64("root-size", 2<<30, "root file size for -mirror-mem")
	// 33100 products × 3 versions make 4 product files of ~66 MB.
	wideProducts = flag.Int("wide-products", 33100, "products of the 4-file catalog of -mirror-mem")
	shards       = flag.Int("shards", 64, "catalog files of the sharded 10× registry (publish --catalog-shards)")
	signing      = flag.Bool("signing", false, "measure the cost of signing (publish with and without a key) instead")
)

func check(err error, what string) {
	if err != nil {
		log.Fatalf("%s: %v", what, err)
	}
}

// proc is one run of a binary: wall time, CPU, peak RSS.
type proc struct {
	wall, cpu time.Duration
	rssMB     float64
	code      int
	out       string
}

func run(env []string, bin string, args ...string) proc {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	check(cmd.Start(), bin)
	// Peak RSS from /proc (VmHWM, polled until exit): the rusage of a
	// child started by vfork counts the parent's memory too.
	var hwm atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			if kb := vmHWM(cmd.Process.Pid); kb > 0 {
				hwm.Store(kb)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	p := proc{wall: time.Since(start), out: out.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		p.code = ee.ExitCode()
	} else {
		check(err, bin)
	}
	st := cmd.ProcessState
	p.cpu = st.UserTime() + st.SystemTime()
	p.rssMB = float64(hwm.Load()) / 1024
	return p
}

// vmHWM is a process's peak resident set in KiB (0 when gone).
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb
		}
	}
	return 0
}

func median(f func() time.Duration) time.Duration {
	var ds []time.Duration
	for i := 0; i < *runs; i++ {
		ds = append(ds, f())
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/1e6) }

type row struct {
	scale                       string
	products, items             int
	jsonMB                      float64
	parse, merge, marshal       time.Duration
	publish, list, verify, mirr proc
	reqs, reqsGzip              float64
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench-catalog: ")
	dir, err := os.MkdirTemp("", "bench-catalog-")
	check(err, "temp dir")
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/publish", "./cmd/edgeproxy", "./tools/sampleimage")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	check(build.Run(), "go build")
	minioBin, err := miniotest.Binary()
	check(err, "make minio")
	srv, err := miniotest.StartBinary(minioBin, filepath.Join(dir, "minio"), miniotest.Options{})
	check(err, "start MinIO")
	defer srv.Stop()
	if *mirrorMem {
		os.Exit(mirrorMemory(dir, bin, srv))
	}
	if *signing {
		os.Exit(signingCost(dir, bin, srv))
	}
	var rows []row
	for i, scale := range []int{1, 10} {
		rows = append(rows, measure(dir, bin, srv, fmt.Sprintf("%d×", scale), *products*scale, 1, i))
	}
	rows = append(rows, measure(dir, bin, srv, fmt.Sprintf("10×, %d files", *shards), *products*10, *shards, 2))
	os.Exit(report(rows))
}

func measure(dir, bin string, srv *miniotest.Server, scale string, n, nfiles, idx int) row {
	ctx := context.Background()
	log.Printf("%s: building a catalog of %d products × %d versions", scale, n, *versions)
	tree := sstest.Build(sstest.Spec{Products: n, Versions: *versions, FileSize: 64, NoFiles: true})
	files := layOut(tree.Catalog, nfiles)
	served := largestFile(files) // what parse, merge and marshal are measured on
	data := files[served]
	r := row{scale: scale, products: n, jsonMB: float64(len(data)) / (1 << 20)}
	for _, p := range tree.Catalog.Products {
		for _, v := range p.Versions {
			r.items += len(v.Items)
		}
	}
	var c *catalog.Catalog
	r.parse = median(func() time.Duration {
		start := time.Now()
		var err error
		c, err = catalog.Parse(data)
		check(err, "parse")
		return time.Since(start)
	})
	img := catalog.Image{Name: "bench", Arch: "amd64", OS: "debian", Release: "bookworm", Created: time.Now(),
		Fingerprint: hexOf("fp"), RootKind: catalog.RootSquashfs,
		Metadata: catalog.FileRef{SHA256: hexOf("m"), Size: 100}, Root: catalog.FileRef{SHA256: hexOf("r"), Size: 100}}
	r.merge = median(func() time.Duration {
		c, _ := catalog.Parse(data)
		start := time.Now()
		_, err := c.Add(img)
		check(err, "add")
		return time.Since(start)
	})
	r.marshal = median(func() time.Duration {
		start := time.Now()
		_ = c.Marshal()
		return time.Since(start)
	})

	// A bucket holding the catalog.
	bucket := fmt.Sprintf("bench%d", idx)
	check(srv.CreateBucket(ctx, bucket), "bucket")
	cl := srv.Client()
	for k, b := range files {
		_, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: bytes.NewReader(b), ContentType: aws.String("application/json")})
		check(err, "put "+k)
	}
	env := srv.Env()
	loc := "s3://" + bucket
	sample := filepath.Join(dir, "sample-"+bucket)
	p := run(nil, bin+"/sampleimage", "-out", sample, "-name", "bench")
	if p.code != 0 {
		log.Fatalf("sampleimage: %s", p.out)
	}
	log.Printf("%s: publish, list, verify --no-files", scale)
	r.publish = run(env, bin+"/publish", "bench", "--bucket", loc, "--metadata", sample+"/incus.tar.xz", "--rootfs", sample+"/rootfs.squashfs", "--no-progress")
	if r.publish.code != 0 {
		log.Fatalf("publish: %s", r.publish.out)
	}
	r.list = run(env, bin+"/publish", "list", "--bucket", loc, "--json")
	r.verify = run(env, bin+"/publish", "verify", "--bucket", loc, "--no-files", "--json") // the synthetic files are absent: exit 1 expected

	// Mirror of the catalog alone: the source tree is the same catalog, the
	// bucket already has every version.
	src := filepath.Join(dir, "src-"+bucket)
	for k, b := range files {
		check(os.MkdirAll(filepath.Dir(filepath.Join(src, k)), 0o755), "mkdir")
		check(os.WriteFile(filepath.Join(src, k), b, 0o644), "write")
	}
	log.Printf("%s: mirror of the catalog alone", scale)
	r.mirr = run(env, bin+"/publish", "mirror", src, "--bucket", loc, "--json", "--no-progress")
	if r.mirr.code != 0 {
		log.Printf("mirror exit %d: %.300s", r.mirr.code, r.mirr.out)
	}

	log.Printf("%s: edgeproxy", scale)
	r.reqs, r.reqsGzip = serve(dir, bin, env, loc, served)
	return r
}

// layOut returns the catalog files of c stored as n files (catalog/layout.go).
func layOut(c *catalog.Catalog, n int) map[string][]byte {
	l := catalog.Layout(n)
	root := catalog.New()
	check(root.SetShards(l.Count()), "shards")
	out := map[string][]byte{catalog.ImagesPath: root.Marshal()}
	byFile := map[string]*catalog.Catalog{}
	for _, p := range l.Files() {
		byFile[p] = catalog.NewShard(p)
	}
	for pk, p := range c.Products {
		byFile[l.FileOf(pk)].Products[pk] = p
	}
	entries := map[string]catalog.IndexEntry{}
	for p, f := range byFile {
		out[p] = f.Marshal()
		entries[p] = l.Entry(f, p, time.Now())
	}
	out[catalog.IndexPath] = l.Index(entries).Marshal()
	return out
}

// largestFile is the biggest product file.
func largestFile(files map[string][]byte) string {
	best := ""
	for k, b := range files {
		if k != catalog.IndexPath && (best == "" || len(b) > len(files[best])) {
			best = k
		}
	}
	return best
}

func hexOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// serve starts edgeproxy on the bucket and measures requests/s of catalog
// file key without and with gzip.
func serve(dir, bin string, env []string, loc, key string) (plain, gz float64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err, "port")
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin+"/edgeproxy", "--bucket", loc, "--listen", addr, "--self-signed", "--hostname", "127.0.0.1",
		"--state-dir", filepath.Join(dir, "edge-"+strings.ReplaceAll(loc, "/", "_")), "--quiet", "--catalog-ttl", "10s", "--memory-limit", "0",
		"--client-rate=-1") // one client address here: edgeproxy's per-client limit would cap the rate
	cmd.Env = append(os.Environ(), env...)
	check(cmd.Start(), "edgeproxy")
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableCompression: true, MaxIdleConnsPerHost: *conns, ForceAttemptHTTP2: false,
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	url := "https://" + addr + "/" + key
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := hc.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			log.Fatalf("edgeproxy not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	load := func(gzip bool) float64 {
		get := func() bool {
			req, _ := http.NewRequest("GET", url, nil)
			if gzip {
				req.Header.Set("Accept-Encoding", "gzip")
			}
			resp, err := hc.Do(req)
			if err != nil {
				return false
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode == 200
		}
		if !get() { // warm the cache
			log.Printf("edgeproxy: GET images.json failed")
			return 0
		}
		var n atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(*duration)
		for i := 0; i < *conns; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					if get() {
						n.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return float64(n.Load()) / duration.Seconds()
	}
	return load(false), load(true)
}

func report(rows []row) int {
	fmt.Println()
	fmt.Println("| scale | products | items | largest catalog file | parse | merge one image | marshal | publish (wall / CPU / RSS) | list (wall / RSS) | verify --no-files (wall / RSS) | mirror, catalog only (wall / RSS) | edgeproxy, that file req/s (plain / gzip) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %d | %d | %.1f MB | %s | %s | %s | %s / %s / %.0f MB | %s / %.0f MB | %s / %.0f MB | %s / %.0f MB | %.1f / %.1f |\n",
			r.scale, r.products, r.items, r.jsonMB, ms(r.parse), ms(r.merge), ms(r.marshal),
			ms(r.publish.wall), ms(r.publish.cpu), r.publish.rssMB, ms(r.list.wall), r.list.rssMB,
			ms(r.verify.wall), r.verify.rssMB, ms(r.mirr.wall), r.mirr.rssMB, r.reqs, r.reqsGzip)
	}
	sharded, big, small := rows[2], rows[1], rows[0]
	ok := true
	target := func(name string, pass bool, got string) {
		v := "met"
		if !pass {
			v, ok = "MISSED", false
		}
		fmt.Printf("target %-46s %-8s (%s)\n", name, v, got)
	}
	target("10× in files: one publish's CPU < 200 ms", sharded.publish.cpu < 200*time.Millisecond, ms(sharded.publish.cpu))
	target("10× in files: publish peak RSS < 200 MB", sharded.publish.rssMB < 200, fmt.Sprintf("%.0f MB", sharded.publish.rssMB))
	lin := func(a, b time.Duration) float64 { return float64(b) / float64(max(a, time.Microsecond)) }
	target("linear: parse 10×/1× < 15", lin(small.parse, big.parse) < 15, fmt.Sprintf("%.1f", lin(small.parse, big.parse)))
	target("linear: publish CPU 10×/1× < 15", lin(small.publish.cpu, big.publish.cpu) < 15, fmt.Sprintf("%.1f", lin(small.publish.cpu, big.publish.cpu)))
	if !ok {
		return 1
	}
	return 0
}

func contextBG() context.Context { return context.Background() }
