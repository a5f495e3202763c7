package edgeproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// tool returns the path of a program a test drives, skipping the test
// when it is missing unless REGISTRY_E2E=require (as `make test` sets).
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s not found: run scripts/install-deps.sh", name)
		if os.Getenv("REGISTRY_E2E") == "require" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// Fifty real clients that stop reading a big image file — 25 HTTP/2
// streams of nghttp with a zero flow-control window, 25 HTTP/1.1 curl
// downloads whose output nobody reads — hold no origin slot: with only two
// slots, other downloads of the same and of another file all complete,
// byte for byte. Then the minimum transfer rate cuts the stalled ones.
func TestStalledReadersDoNotStarveDownloads(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of stalled clients: make test runs it")
	}
	nghttp, curl := tool(t, "nghttp"), tool(t, "curl")
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
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if want := sha256.Sum256(data[k]); resp.StatusCode != 200 || err != nil || !bytes.Equal(h.Sum(nil), want[:]) {
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
