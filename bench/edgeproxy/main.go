// Command edgeproxy benchmarks cmd/edgeproxy against nginx and Caddy (the
// Debian packages), in one run on loopback, all three as TLS fronts for
// the same private MinIO bucket:
//
//   - memory: peak RSS of each server (nginx: master + workers + cache
//     helpers) while 256 downloads of a 1 GiB image file are in flight,
//     on the freshly started server;
//   - big file: MiB/s downloading the 1 GiB file whole, one download at a
//     time (median of -runs), and -parallel (8) at once (total MiB/s,
//     median of -parallel-runs); one download per server whose SHA-256
//     is checked first fills edgeproxy's disk cache and nginx's
//     proxy_cache, so those two serve a warm cache; nginx-stream and
//     Caddy read MinIO every time;
//   - catalog: requests/s for streams/v1/images.json (about 200 KB of
//     catalog JSON, uncompressed: wrk sends no Accept-Encoding) with wrk
//     over HTTPS/1.1, after a warm-up (median of -rounds runs); -gzip adds
//     a run with Accept-Encoding: gzip, as Go clients such as Incus send.
//
// Alongside, it reports the server's own CPU time (user + system, all its
// processes) per JSON request and per GiB downloaded: steadier than
// throughput when the machine is shared, since wrk, the download client,
// MinIO and the server all compete for the same cores.
//
// Only one server is under load at any time. The others stay up, idle, so
// that the timed downloads and the wrk runs can go round-robin: background
// load then hits all of them alike.
//
// Downloads use HTTP/1.1 (Go's transport with a custom TLS configuration,
// as Incus's client has, does not offer HTTP/2); -h2 switches them to
// HTTP/2. wrk speaks HTTP/1.1 only.
//
// Targets: edgeproxy ≥ 1.0× nginx's requests/s on the JSON, ≥ 1.0× nginx's
// throughput on the big file with both caches warm (one download and
// -parallel at once) at no more server CPU per GiB, peak RSS ≤ 64 MiB with
// 256 downloads; it exits 1 when one is missed. nginx-stream (nginx
// streaming image files from MinIO, no image cache) and Caddy (no cache at
// all) are measured alongside, for reference.
//
//	go run ./bench/edgeproxy [-size 1073741824] [-duration 5s] [-rounds 3] [-clients 256] [-runs 7] [-parallel-runs 3]
//	    [-skip-caddy] [-gzip] [-edgeproxy-http] [-h2] [-keep] [-serve]
//
// Origin access: edgeproxy reads the private bucket with signed requests,
// as in production. nginx and Caddy cannot sign S3 requests, so for the
// benchmark only the bucket gets an anonymous-read policy (s3:GetObject,
// no listing) and they read it anonymously; edgeproxy keeps signing.
// -edgeproxy-http adds a second edgeproxy that reads anonymously too, as a
// plain HTTP origin (--origin), which separates the S3 SDK's cost from the
// proxy's. Every server gets the same certificate (ECDSA P-256), the same
// TLS 1.3 cipher (AES-128-GCM), the same MinIO and no access log. The
// server configurations are documented where they are generated
// (servers.go). -serve sets everything up and waits, for profiling by
// hand (perf record -p PID, wrk, h2load).
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/miniotest"
	"github.com/incus-appliance/registry/internal/tlsutil"
)

const bucket = "registry"

type options struct {
	size        int64
	jsonSize    int
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	threads     int
	conns       int
	runs        int
	parRuns     int
	parallel    int
	clients     int
	hold        time.Duration
	catalogTTL  time.Duration
	h2          bool
	gzip        bool
	nginxBufNum int
	nginxBufSz  string
}

// result is one server's numbers.
type result struct {
	p        *proc
	about    string
	jsonRPS  []float64
	jsonCPU  []float64 // server CPU µs per request
	gzipRPS  []float64
	gzipSize float64 // bytes per gzip response, as wrk counted them
	fileMiBs []float64
	fileCPU  []float64 // server CPU seconds per GiB
	parMiBs  []float64 // total MiB/s of the parallel downloads
	tlsInfo  string
	conc     concurrentResult
	wholeHWM int64 // KiB, peak over the whole run (sum over processes)
}

// cleanups run on exit, fatal errors and interrupts included.
var (
	cleanups  []func()
	cleanupMu sync.Mutex
)

func atExit(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

func cleanup() {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

func fatalf(format string, args ...any) {
	log.Printf(format, args...)
	cleanup()
	os.Exit(2)
}

func check(err error, hint string) {
	if err != nil {
		if hint != "" {
			fatalf("%v (%s)", err, hint)
		}
		fatalf("%v", err)
	}
}

// flags are the command-line switches that are not measurement options.
type flags struct {
	edgeBin                        string
	skipNginx, skipCaddy, edgeHTTP bool
	keep, serveOnly                bool
}

func parseFlags() (options, flags) {
	var o options
	var f flags
	flag.Int64Var(&o.size, "size", 1<<30, "big image file size in bytes")
	flag.IntVar(&o.jsonSize, "json-size", 200<<10, "approximate size of images.json in bytes")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each wrk round on the JSON")
	flag.IntVar(&o.rounds, "rounds", 3, "wrk rounds per server (round-robin; the median is reported)")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "wrk warm-up per server before the rounds")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.IntVar(&o.conns, "connections", 64, "wrk connections")
	flag.IntVar(&o.runs, "runs", 7, "timed single big-file downloads per server (round-robin; the median is reported): a few seconds each, and noisy on a shared machine")
	flag.IntVar(&o.parRuns, "parallel-runs", 3, "timed rounds of -parallel downloads per server (round-robin; the median is reported)")
	flag.IntVar(&o.parallel, "parallel", 8, "downloads at once in the parallel big-file run")
	flag.IntVar(&o.clients, "clients", 256, "concurrent downloads for the memory test")
	flag.DurationVar(&o.hold, "hold", 10*time.Second, "how long all concurrent downloads stay in flight")
	flag.DurationVar(&o.catalogTTL, "catalog-ttl", 2*time.Second, "edgeproxy --catalog-ttl and nginx proxy_cache_valid (whole seconds)")
	flag.BoolVar(&o.h2, "h2", false, "download over HTTP/2 instead of HTTP/1.1 (wrk is always HTTP/1.1)")
	flag.BoolVar(&o.gzip, "gzip", false, "also measure the JSON with Accept-Encoding: gzip (as Incus asks); informational")
	flag.IntVar(&o.nginxBufNum, "nginx-buffers", 8, "nginx proxy_buffers number for image downloads")
	flag.StringVar(&o.nginxBufSz, "nginx-buffer-size", "8k", "nginx proxy_buffers size for image downloads")
	flag.StringVar(&f.edgeBin, "edgeproxy", "", "edgeproxy binary (default: go build ./cmd/edgeproxy)")
	flag.BoolVar(&f.skipNginx, "skip-nginx", false, "leave nginx out (no ratios then)")
	flag.BoolVar(&f.skipCaddy, "skip-caddy", false, "leave Caddy out")
	flag.BoolVar(&f.edgeHTTP, "edgeproxy-http", false, "also run edgeproxy reading MinIO anonymously as a plain HTTP origin (--origin), like nginx and Caddy; informational")
	flag.BoolVar(&f.keep, "keep", false, "keep the temp directory (configs, logs)")
	flag.BoolVar(&f.serveOnly, "serve", false, "set everything up, print the URLs and PIDs, and wait for ^C instead of measuring (for profiling by hand)")
	flag.Parse()
	o.catalogTTL = max(o.catalogTTL.Round(time.Second), time.Second)
	return o, f
}

// bench is a running benchmark: the servers under test and what they
// serve.
type bench struct {
	o       options
	wrk     string
	fx      *fixture
	certPEM []byte
	rs      []*result
	clients map[*result]*http.Client // one connection each, for timed downloads
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench-edgeproxy: ")
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() { <-sigs; fatalf("interrupted") }()

	o, f := parseFlags()
	b := setUp(o, f)
	if f.serveOnly {
		b.serve()
	}
	b.warmCaches()
	b.memory()
	b.bigFile()
	b.parallelFiles()
	b.catalogJSON()
	for _, r := range b.rs {
		_, r.wholeHWM = r.p.memory()
	}
	ok := report(o, len(b.fx.imagesJSON), b.rs)
	cleanup()
	if !ok {
		os.Exit(1)
	}
}

// setUp starts MinIO with the fixture, then every server under test, each
// checked and left idle until its turn.
func setUp(o options, f flags) *bench {
	b := &bench{o: o, clients: map[*result]*http.Client{}}
	var err error
	b.wrk, err = exec.LookPath("wrk")
	check(err, "apt-get install wrk")
	nginx, caddy := "", ""
	if !f.skipNginx {
		nginx, err = lookPath("nginx")
		check(err, "apt-get install nginx-light, or -skip-nginx")
	}
	if !f.skipCaddy {
		caddy, err = exec.LookPath("caddy")
		check(err, "apt-get install caddy, or -skip-caddy")
	}
	minioBin, err := miniotest.Binary()
	check(err, "make minio")

	dir, err := os.MkdirTemp("", "edgeproxy-bench-")
	check(err, "")
	if f.keep {
		log.Printf("keeping %s", dir)
	} else {
		atExit(func() { os.RemoveAll(dir) })
	}
	if f.edgeBin == "" {
		f.edgeBin = filepath.Join(dir, "bin", "edgeproxy")
		log.Printf("building edgeproxy")
		out, err := exec.Command("go", "build", "-o", f.edgeBin, "./cmd/edgeproxy").CombinedOutput()
		check(err, strings.TrimSpace(string(out)))
	}

	srv, err := miniotest.StartBinary(minioBin, filepath.Join(dir, "minio"), miniotest.Options{Buckets: []string{bucket}})
	check(err, "")
	atExit(srv.Stop)
	log.Printf("uploading a %s image file and the catalog to MinIO", human(o.size))
	t0 := time.Now()
	b.fx, err = upload(context.Background(), srv, bucket, o.size, o.jsonSize)
	check(err, "")
	log.Printf("uploaded in %.1fs: images.json %d bytes, %s", time.Since(t0).Seconds(), len(b.fx.imagesJSON), b.fx.bigKey)
	// For nginx and Caddy only: edgeproxy signs its requests regardless.
	check(srv.AllowAnonymousRead(context.Background(), bucket, ""), "")

	certPEM, keyPEM, err := tlsutil.SelfSigned([]string{"127.0.0.1", "localhost"}, 24*time.Hour)
	check(err, "")
	b.certPEM = certPEM
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	check(os.WriteFile(cert, certPEM, 0o644), "")
	check(os.WriteFile(key, keyPEM, 0o600), "")

	cands := candidates(o, f, srv, nginx, caddy, cert, key)
	for _, c := range cands {
		sdir := filepath.Join(dir, c.name)
		check(os.MkdirAll(sdir, 0o755), "")
		port, err := freePort()
		check(err, "")
		p, err := c.launch(sdir, port)
		check(err, "")
		atExit(p.stop)
		r := &result{p: p, about: c.about}
		b.rs = append(b.rs, r)
		if err := verify(p, b.fx, certPEM, o.gzip); err != nil {
			fail(r, err)
		}
	}
	return b
}

// fail ends the run with a server's log.
func fail(r *result, err error) {
	fatalf("%s: %v\n--- %s log (%s):\n%s", r.p.name, err, r.p.name, r.p.dir, r.p.logTail())
}

// serve prints where everything is and waits for ^C.
func (b *bench) serve() {
	for _, r := range b.rs {
		log.Printf("%-9s pid %d  %s  %s", r.p.name, r.p.cmd.Process.Pid, r.p.url(catalog.ImagesPath), r.p.url(b.fx.bigKey))
	}
	log.Printf("serving until interrupted")
	select {}
}

// warmCaches downloads the big file once from each server, checking its
// SHA-256: edgeproxy and nginx then hold it in their disk caches, and the
// file measurements below are warm-cache ones.
func (b *bench) warmCaches() {
	for _, r := range b.rs {
		b.clients[r] = newClient(b.certPEM, 1, b.o.h2)
		t0 := time.Now()
		st, err := verifyDownload(b.clients[r], r.p.url(b.fx.bigKey), b.fx.bigSize, b.fx.bigSHA256)
		if err != nil {
			fail(r, err)
		}
		r.tlsInfo = describeTLS(st)
		log.Printf("%s: first (cache-filling) download in %.1fs", r.p.name, time.Since(t0).Seconds())
		if r.p.name == "nginx" { // the file must now come from nginx's cache
			req, _ := http.NewRequest(http.MethodGet, r.p.url(b.fx.bigKey), nil)
			req.Header.Set("Range", "bytes=0-0")
			resp, err := b.clients[r].Do(req)
			if err != nil {
				fail(r, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if st := resp.Header.Get("X-Cache-Status"); st != "HIT" {
				fail(r, fmt.Errorf("big file: X-Cache-Status %q after a whole download, want HIT", st))
			}
		}
	}
}

// memory: o.clients concurrent downloads on each server in turn, peak RSS.
func (b *bench) memory() {
	for _, r := range b.rs {
		p := r.p
		log.Printf("%s: %d concurrent downloads for %s", p.name, b.o.clients, b.o.hold)
		conc, err := concurrent(newClient(b.certPEM, b.o.clients, b.o.h2), p.url(b.fx.bigKey), b.o.clients, b.o.hold, func() int64 {
			rss, hwm := p.memory()
			return max(rss, hwm)
		})
		if err != nil {
			fail(r, fmt.Errorf("concurrent downloads: %w", err))
		}
		r.conc = conc
		log.Printf("%s: all %d under way after %.1fs, %.0f MiB/s in total, peak RSS %.1f MiB",
			p.name, b.o.clients, conc.rampUp.Seconds(), mibps(conc.bytes, conc.held), float64(conc.peakRSS)/1024)
	}
}

// bigFile: the big file whole, one download at a time, round-robin.
func (b *bench) bigFile() {
	for range b.o.runs {
		for _, r := range b.rs {
			cpu0 := r.p.cpuSeconds()
			d, _, err := download(context.Background(), b.clients[r], r.p.url(b.fx.bigKey), b.fx.bigSize, nil)
			if err != nil {
				fail(r, err)
			}
			r.fileMiBs = append(r.fileMiBs, mibps(b.fx.bigSize, d))
			r.fileCPU = append(r.fileCPU, (r.p.cpuSeconds()-cpu0)/(float64(b.fx.bigSize)/(1<<30)))
		}
	}
	for _, r := range b.rs {
		log.Printf("%s: big file %s MiB/s, server CPU %s s/GiB (%s)", r.p.name, joinf(r.fileMiBs, "%.0f"), joinf(r.fileCPU, "%.2f"), r.tlsInfo)
	}
}

// parallelFiles: o.parallel whole downloads of the big file at once (total
// MiB/s over the wall time), round-robin.
func (b *bench) parallelFiles() {
	for range b.o.parRuns {
		for _, r := range b.rs {
			c := newClient(b.certPEM, b.o.parallel, b.o.h2)
			t0 := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, b.o.parallel)
			for range b.o.parallel {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, _, err := download(context.Background(), c, r.p.url(b.fx.bigKey), b.fx.bigSize, nil); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			if err := <-errs; err != nil {
				fail(r, err)
			}
			r.parMiBs = append(r.parMiBs, mibps(int64(b.o.parallel)*b.fx.bigSize, time.Since(t0)))
			c.CloseIdleConnections()
		}
	}
	for _, r := range b.rs {
		log.Printf("%s: %d parallel downloads %s MiB/s in total", r.p.name, b.o.parallel, joinf(r.parMiBs, "%.0f"))
	}
}

// catalogJSON: images.json with wrk, a warm-up each, then rounds
// round-robin (and with gzip when asked).
func (b *bench) catalogJSON() {
	b.jsonRounds("", func(r *result) *[]float64 { return &r.jsonRPS }, func(r *result) *[]float64 { return &r.jsonCPU },
		0.99*float64(len(b.fx.imagesJSON)))
	if b.o.gzip {
		b.jsonRounds(" (gzip)", func(r *result) *[]float64 { return &r.gzipRPS }, nil, 0, "Accept-Encoding: gzip")
	}
}

func (b *bench) jsonRounds(label string, dst func(*result) *[]float64, cpu func(*result) *[]float64, minBytes float64, headers ...string) {
	o := b.o
	for _, r := range b.rs {
		if _, err := runWrk(b.wrk, r.p.url(catalog.ImagesPath), o.threads, o.conns, o.warmup, headers...); err != nil {
			fail(r, err)
		}
	}
	for range o.rounds {
		for _, r := range b.rs {
			cpu0 := r.p.cpuSeconds()
			w, err := runWrk(b.wrk, r.p.url(catalog.ImagesPath), o.threads, o.conns, o.duration, headers...)
			if err != nil {
				fail(r, err)
			}
			if cpu != nil && w.requests > 0 {
				*cpu(r) = append(*cpu(r), (r.p.cpuSeconds()-cpu0)/float64(w.requests)*1e6)
			}
			if w.bytesPerReq < minBytes {
				fail(r, fmt.Errorf("wrk read %.0f bytes per response, want at least %.0f", w.bytesPerReq, minBytes))
			}
			if w.socketErrors != "" {
				log.Printf("%s: wrk socket errors: %s", r.p.name, w.socketErrors)
			}
			*dst(r) = append(*dst(r), w.rps)
			if len(headers) > 0 {
				r.gzipSize = w.bytesPerReq
			}
		}
	}
	for _, r := range b.rs {
		msg := ""
		if cpu != nil {
			msg = ", server CPU " + joinf(*cpu(r), "%.0f") + " µs/request"
		}
		log.Printf("%s: images.json%s %s req/s%s", r.p.name, label, joinf(*dst(r), "%.0f"), msg)
	}
}

// verify waits for a server, then checks that it serves images.json as
// uploaded (and gzipped when asked), and that nginx caches it.
func verify(p *proc, fx *fixture, certPEM []byte, gz bool) error {
	c := newClient(certPEM, 4, false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, err := get(c, p.url(catalog.IndexPath), nil)
		if err == nil {
			break
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited at start")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, body, err := get(c, p.url(catalog.ImagesPath), nil)
	if err != nil {
		return err
	}
	if !bytes.Equal(body, fx.imagesJSON) {
		return fmt.Errorf("images.json: got %d bytes that differ from the %d uploaded", len(body), len(fx.imagesJSON))
	}
	if strings.HasPrefix(p.name, "nginx") { // the second read must come from nginx's cache
		resp, _, err := get(c, p.url(catalog.ImagesPath), nil)
		if err != nil {
			return err
		}
		if st := resp.Header.Get("X-Cache-Status"); st != "HIT" {
			return fmt.Errorf("images.json: X-Cache-Status %q on the second read, want HIT", st)
		}
	}
	if gz {
		resp, body, err := get(c, p.url(catalog.ImagesPath), http.Header{"Accept-Encoding": {"gzip"}})
		if err != nil {
			return err
		}
		if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
			return fmt.Errorf("images.json with Accept-Encoding gzip: Content-Encoding %q", ce)
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return err
		}
		plain, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(plain, fx.imagesJSON) {
			return fmt.Errorf("images.json gzipped: does not decompress to what was uploaded (%v)", err)
		}
	}
	return nil
}

// report prints the table and the verdicts; false when a target is missed.
func report(o options, jsonLen int, rs []*result) bool {
	proto := "HTTP/1.1"
	if o.h2 {
		proto = "HTTP/2"
	}
	fmt.Printf("\nedgeproxy vs nginx vs Caddy: TLS on loopback in front of one MinIO; images.json %.0f KB, image file %s\n",
		float64(jsonLen)/1000, human(o.size))
	fmt.Printf("JSON: wrk -t%d -c%d, HTTP/1.1, median of %d rounds of %s; file: median of %d whole downloads over %s, one at a time,\n",
		o.threads, o.conns, o.rounds, o.duration, o.runs, proto)
	fmt.Printf("and of %d rounds of %d at once (total MiB/s); edgeproxy and nginx from a warm cache (its disk cache, proxy_cache),\n", o.parRuns, o.parallel)
	fmt.Printf("nginx-stream and Caddy from MinIO;\n")
	fmt.Printf("RSS: peak while %d downloads (%s) are in flight for %s, on a fresh server\n", o.clients, proto, o.hold)
	fmt.Printf("edgeproxy reads the private bucket with signed requests; nginx and Caddy read it anonymously (GetObject bucket policy set for this benchmark only)\n\n")
	fmt.Printf("%-14s %10s %9s %10s %9s %12s %12s %11s %13s", "server", "JSON req/s", "µs/req", "file MiB/s", "CPU s/GiB",
		fmt.Sprintf("%d× MiB/s", o.parallel),
		fmt.Sprintf("RSS MiB @%d", o.clients), fmt.Sprintf("MiB/s @%d", o.clients), "run peak MiB")
	if o.gzip {
		fmt.Printf(" %16s", "JSON gzip req/s")
	}
	fmt.Println()
	for _, r := range rs {
		fmt.Printf("%-14s %10.0f %9.0f %10.1f %9.2f %12.1f %12.1f %11.0f %13.1f", r.p.name, median(r.jsonRPS), median(r.jsonCPU),
			median(r.fileMiBs), median(r.fileCPU), median(r.parMiBs), float64(r.conc.peakRSS)/1024, mibps(r.conc.bytes, r.conc.held), float64(r.wholeHWM)/1024)
		if o.gzip {
			fmt.Printf(" %16s", fmt.Sprintf("%.0f (%.0f KB)", median(r.gzipRPS), r.gzipSize/1000))
		}
		fmt.Println()
	}
	fmt.Println()
	for _, r := range rs {
		fmt.Printf("  %-14s %s; %s\n", r.p.name, r.about, r.tlsInfo)
	}
	fmt.Println("  µs/req, CPU s/GiB: user+system CPU time of the server's processes per JSON request and per GiB downloaded")
	fmt.Println("       (medians; MinIO's and the clients' CPU not included), steadier than throughput on a busy machine")
	fmt.Println("  RSS: VmRSS/VmHWM summed over the server's processes (nginx: master, workers, cache manager and loader;")
	fmt.Println("       pages shared between them count once per process); run peak: VmHWM at the end of the whole run")
	fmt.Println()
	ok := true
	verdict := func(label string, met bool, format string, args ...any) {
		ok = ok && met
		v := "met"
		if !met {
			v = "NOT MET"
		}
		fmt.Printf("%-36s "+format+"  %s\n", append(append([]any{label}, args...), v)...)
	}
	edge := rs[0]
	if i := slices.IndexFunc(rs, func(r *result) bool { return r.p.name == "nginx" }); i >= 0 {
		ng := rs[i]
		jr := median(edge.jsonRPS) / median(ng.jsonRPS)
		verdict("edgeproxy / nginx, JSON req/s", jr >= 1.0, "= %.2f× (target ≥ 1.0×)", jr)
		fr := median(edge.fileMiBs) / median(ng.fileMiBs)
		verdict("edgeproxy / nginx, big file, warm", fr >= 1.0, "= %.2f× (target ≥ 1.0×)", fr)
		cr := median(edge.fileCPU) / median(ng.fileCPU)
		verdict("edgeproxy / nginx, CPU per GiB, warm", cr <= 1.0, "= %.2f× (target ≤ 1.0×)", cr)
		pr := median(edge.parMiBs) / median(ng.parMiBs)
		verdict(fmt.Sprintf("edgeproxy / nginx, %d× big file, warm", o.parallel), pr >= 1.0, "= %.2f× (target ≥ 1.0×)", pr)
	}
	peak := float64(edge.conc.peakRSS) / 1024
	verdict(fmt.Sprintf("edgeproxy peak RSS @%d downloads", o.clients), peak <= 64, "= %.1f MiB (target ≤ 64 MiB)", peak)
	return ok
}

// lookPath finds a program on PATH or in /usr/sbin (nginx's home, often
// not on a non-root user's PATH).
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/" + name); serr == nil {
			return "/usr/sbin/" + name, nil
		}
	}
	return p, err
}

func describeTLS(st *tls.ConnectionState) string {
	if st == nil {
		return "no TLS"
	}
	proto := st.NegotiatedProtocol
	if proto == "" {
		proto = "http/1.1"
	}
	return fmt.Sprintf("%s %s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), proto)
}

func mibps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / (1 << 20) / d.Seconds()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func joinf(xs []float64, format string) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprintf(format, x))
	}
	return strings.Join(s, ", ")
}

func human(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}
