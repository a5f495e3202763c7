package edgeproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/tooltest"
)

// Fifty real clients that stop reading a big image file — 25 HTTP/2
// streams of nghttp with a zero flow-control window, 25 HTTP/1.1 curl
// downloads whose output nobody reads — hold no origin slot: with only two
// slots, other downloads of the same and of another file all complete,
// byte for byte. Then the minimum transfer rate cuts the stalled ones.
func TestStalledReadersDoNotStarveDownloads(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of stalled clients: make test runs it")
	}
	tools := tooltest.Require(t, "nghttp", "curl")
	nghttp, curl := tools[0], tools[1]
	dir, keys, data := catalogRegistry(t, 64<<20, 4<<20)
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) {
		c.MaxOriginRequests = 2
		c.MinTransferRate, c.MinRateGrace = 256<<10, 30*time.Second
	})
	big := p.URL + "/" + keys[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var procs []*exec.Cmd
	var wg sync.WaitGroup
	start := func(name string, args ...string) {
		cmd := exec.CommandContext(ctx, name, args...)
		out, _ := cmd.StdoutPipe() // never read: curl stalls once the pipe is full
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		wg.Add(1)
		go func() { defer wg.Done(); cmd.Wait(); _ = out }()
	}
	// -w 0: a stream window of 0 bytes; -t 0: no client timeout.
	start(nghttp, "-n", "-w", "0", "-t", "0", "-m", "25", big)
	for range 25 {
		start(curl, "--http1.1", "-sk", "--cacert", p.Cert, big)
	}
	defer func() { cancel(); wg.Wait() }()
	// All fifty are being answered (and stalled) before the test goes on,
	// and the file's one fetch into the cache is over.
	if !eventually(2*time.Minute, func() bool {
		m := p.metrics(t)
		return metricValue(m, "edgeproxy_requests_inflight") >= 50 && metricValue(m, "edgeproxy_origin_inflight") == 0
	}) {
		t.Fatalf("the stalled clients did not all get going: %v in flight", metricValue(p.metrics(t), "edgeproxy_requests_inflight"))
	}
	m := p.metrics(t)
	t.Logf("%v requests in flight, %v origin calls in progress", metricValue(m, "edgeproxy_requests_inflight"), metricValue(m, "edgeproxy_origin_inflight"))
	if v := metricValue(m, "edgeproxy_origin_inflight"); v != 0 {
		t.Errorf("stalled readers hold %v origin slots", v)
	}
	// Other downloads, of the big file and of another, all complete.
	var dl sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		dl.Add(1)
		go func() {
			defer dl.Done()
			k := i % 2
			resp, err := clientFrom(p, "127.0.0.2").Get(p.URL + "/" + keys[k])
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			got, n, err := digest.OfReader(resp.Body)
			if resp.StatusCode != 200 || err != nil || got != digest.Of(data[k]) {
				errs <- fmt.Errorf("download %d: %d, %d bytes, %v", i, resp.StatusCode, n, err)
			}
		}()
	}
	dl.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// (How many stalled ones are still there now depends on how long the
	// downloads took: the minimum rate may have cut some already.)
	t.Logf("after the downloads: %v requests in flight", metricValue(p.metrics(t), "edgeproxy_requests_inflight"))
	// The minimum rate then cuts every stalled download.
	if !eventually(3*time.Minute, func() bool { return metricValue(p.metrics(t), "edgeproxy_requests_inflight") <= 1 }) {
		t.Errorf("stalled downloads not cut: %v still in flight", metricValue(p.metrics(t), "edgeproxy_requests_inflight"))
	}
}

// serverSockets reads /proc/net/tcp for the sockets whose local port is
// port (the listening one and those in TIME-WAIT, which hold no buffer,
// left out): how many, how many in FIN-WAIT-1,
// and the bytes their send queues hold.
func serverSockets(t *testing.T, port int) (n, finWait1 int, queued int64) {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) || f[3] == "0A" || f[3] == "06" { // LISTEN, TIME-WAIT
			continue
		}
		n++
		if f[3] == "04" {
			finWait1++
		}
		tx, _, _ := strings.Cut(f[4], ":")
		q, _ := strconv.ParseInt(tx, 16, 64)
		queued += q
	}
	return n, finWait1, queued
}

// tcpMemPages is the kernel's TCP memory in pages (the whole machine's).
func tcpMemPages() int64 {
	b, _ := os.ReadFile("/proc/net/sockstat")
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "TCP: "); ok {
			f := strings.Fields(rest)
			for i := 0; i+1 < len(f); i += 2 {
				if f[i] == "mem" {
					n, _ := strconv.ParseInt(f[i+1], 10, 64)
					return n
				}
			}
		}
	}
	return -1
}

// Twenty HTTP/1.1 clients that take a big file at 1 KiB/s, far below the
// minimum rate, are cut by the minimum rate (10 minutes of WriteTimeout
// never come into it), and their connections are reset: no socket stays
// behind holding the rest of the response in kernel memory. (Before this
// test, the megabytes waiting in each socket's send queue counted as
// taken: the cut came minutes later, and each socket then stayed in
// FIN-WAIT-1 with its queue for as long as its client kept reading.)
func TestSlowReadersAreCutAndReset(t *testing.T) {
	if testing.Short() {
		t.Skip("twenty slow clients for about a minute: make test runs it")
	}
	const readers, rate = 20, 16 << 10
	dir, keys, data := catalogRegistry(t, 32<<20)
	logs := &syncBuffer{}
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) {
		c.MinTransferRate, c.MinRateGrace, c.WriteTimeout = rate, 2*time.Second, 10*time.Minute
		c.Logger = jsonLog(logs)
	})
	getAll(t, p, "/"+keys[0], 1, data[0]) // cached: the readers are served from disk
	p.Client.CloseIdleConnections()
	port := p.srv.Addr().(*net.TCPAddr).Port
	pem, _ := os.ReadFile(p.Cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}
	memBefore := tcpMemPages()
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(done); wg.Wait() }()
	start := time.Now()
	for range readers {
		conn, err := tls.Dial("tcp", p.srv.Addr().String(), tlsConf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(rq("GET", "/"+keys[0]))); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			buf := make([]byte, 1<<10)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				if _, err := conn.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	var peakQueued, peakMem int64
	if !eventually(3*time.Minute, func() bool {
		_, _, q := serverSockets(t, port)
		peakQueued, peakMem = max(peakQueued, q), max(peakMem, tcpMemPages())
		return metricValue(p.metrics(t), "edgeproxy_requests_inflight") >= readers
	}) {
		t.Fatal("the slow readers were not all being answered")
	}
	// The minimum rate cuts them, long before WriteTimeout.
	if !eventually(2*time.Minute, func() bool {
		_, _, q := serverSockets(t, port)
		peakQueued, peakMem = max(peakQueued, q), max(peakMem, tcpMemPages())
		return metricValue(p.metrics(t), "edgeproxy_requests_inflight") == 0
	}) {
		t.Fatalf("%v slow readers still served after %s", metricValue(p.metrics(t), "edgeproxy_requests_inflight"), time.Since(start).Round(time.Second))
	}
	cut := time.Since(start)
	// Their sockets are gone, not closing behind megabytes of queue.
	var n, fin int
	var q int64
	if !eventually(30*time.Second, func() bool { n, fin, q = serverSockets(t, port); return n == 0 }) {
		t.Errorf("%d server sockets left (%d in FIN-WAIT-1) holding %d bytes", n, fin, q)
	}
	var took []string
	for _, line := range strings.Split(logs.String(), "\n") {
		var e struct {
			Class    string
			Duration time.Duration
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Class == "image" {
			took = append(took, e.Duration.Round(100*time.Millisecond).String())
		}
	}
	t.Logf("%d readers at 1 KiB/s: all cut within %s (request durations %v); server send queues peaked at %d bytes; "+
		"TCP memory (whole machine) %d pages before, %d at the peak, %d after",
		readers, cut.Round(time.Second), took[1:], peakQueued, memBefore, peakMem, tcpMemPages())
}
