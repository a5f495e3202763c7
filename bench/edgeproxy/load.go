package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// newClient is an HTTPS client trusting the benchmark certificate, with
// up to conns connections. Without h2 it speaks HTTP/1.1, as Go's
// transport does whenever its TLS configuration is customised (Incus's
// is); no Accept-Encoding, so bytes arrive as stored.
func newClient(certPEM []byte, conns int, h2 bool) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
		ForceAttemptHTTP2:   h2,
		TLSHandshakeTimeout: 2 * time.Minute, // 256 handshakes at once on a busy 2-core machine
	}
	return &http.Client{Transport: tr}
}

// get fetches a URL whole, with extra request headers.
func get(c *http.Client, url string, h http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp, b, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp, b, nil
}

// download reads url to the end (hashing it when sum is set) and returns
// how long that took and the connection's TLS state.
func download(ctx context.Context, c *http.Client, url string, size int64, sum hash.Hash) (time.Duration, *tls.ConnectionState, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	buf := make([]byte, 256<<10)
	var w io.Writer = io.Discard
	if sum != nil {
		w = sum
	}
	n, err := io.CopyBuffer(w, struct{ io.Reader }{resp.Body}, buf)
	d := time.Since(start)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: after %d bytes: %w", url, n, err)
	}
	if n != size {
		return 0, nil, fmt.Errorf("GET %s: got %d bytes, want %d", url, n, size)
	}
	return d, resp.TLS, nil
}

// verifyDownload downloads url once and checks its SHA-256.
func verifyDownload(c *http.Client, url string, size int64, want string) (*tls.ConnectionState, error) {
	h := sha256.New()
	_, st, err := download(context.Background(), c, url, size, h)
	if err != nil {
		return nil, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return nil, fmt.Errorf("GET %s: SHA-256 %s, want %s", url, got, want)
	}
	return st, nil
}

// concurrentResult is what n concurrent downloads saw.
type concurrentResult struct {
	rampUp  time.Duration // until all n had their first bytes
	held    time.Duration // then all n in flight for this long
	bytes   int64         // read while held
	peakRSS int64         // KiB, max over samples of the summed VmRSS
}

// concurrent starts n downloads of url at once, waits until every one of
// them is receiving data, keeps them all reading at full speed for hold
// (a download that finishes starts over, so n stay in flight), then
// cancels them. sample is called every 20 ms throughout and its maximum
// is returned as peakRSS.
func concurrent(c *http.Client, url string, n int, hold time.Duration, sample func() int64) (concurrentResult, error) {
	var res concurrentResult
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	stopSampling := make(chan struct{})
	sampled := make(chan int64)
	go func() {
		var peak int64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, sample())
			select {
			case <-stopSampling:
				sampled <- max(peak, sample())
				return
			case <-t.C:
			}
		}
	}()

	var started sync.WaitGroup
	var total atomic.Int64
	errs := make(chan error, n)
	var wg sync.WaitGroup
	begin := time.Now()
	started.Add(n)
	for range n {
		wg.Go(func() {
			first := true
			buf := make([]byte, 32<<10)
			defer func() {
				if first {
					started.Done()
				}
			}()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
						cancel()
					}
					return
				}
				if resp.StatusCode != http.StatusOK {
					resp.Body.Close()
					errs <- fmt.Errorf("GET %s: %s", url, resp.Status)
					cancel()
					return
				}
				for {
					k, err := resp.Body.Read(buf)
					total.Add(int64(k))
					if k > 0 && first {
						first = false
						started.Done()
					}
					if err == io.EOF {
						break
					}
					if err != nil {
						resp.Body.Close()
						if ctx.Err() == nil {
							errs <- err
							cancel()
						}
						return
					}
				}
				resp.Body.Close()
			}
		})
	}
	allIn := make(chan struct{})
	go func() { started.Wait(); close(allIn) }()
	var err error
	select {
	case <-allIn:
		res.rampUp = time.Since(begin)
		b0, t0 := total.Load(), time.Now()
		select {
		case <-time.After(hold):
		case <-ctx.Done():
		}
		res.held, res.bytes = time.Since(t0), total.Load()-b0
	case <-time.After(2 * time.Minute):
		err = fmt.Errorf("not all %d downloads were under way after 2 minutes", n)
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	close(stopSampling)
	res.peakRSS = <-sampled
	close(errs)
	for e := range errs {
		if err == nil {
			err = e
		}
	}
	return res, err
}

// wrkResult is what wrk reported.
type wrkResult struct {
	rps          float64
	requests     int64
	bytesPerReq  float64
	socketErrors string
}

var (
	reRPS    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reTotal  = regexp.MustCompile(`(\d+) requests in [\d.]+\w+, ([\d.]+)([KMGT]?B) read`)
	reNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSocket = regexp.MustCompile(`Socket errors: (.*)`)
)

// runWrk runs wrk against url and parses its summary.
func runWrk(wrk, url string, threads, conns int, d time.Duration, headers ...string) (wrkResult, error) {
	var r wrkResult
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", max(1, int(d.Seconds())))}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	out, err := exec.Command(wrk, append(args, url)...).CombinedOutput()
	if err != nil {
		return r, fmt.Errorf("wrk: %v: %s", err, out)
	}
	s := string(out)
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		return r, fmt.Errorf("wrk: %s non-2xx responses:\n%s", m[1], s)
	}
	m := reRPS.FindStringSubmatch(s)
	if m == nil {
		return r, errors.New("wrk: no Requests/sec in output:\n" + s)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := reTotal.FindStringSubmatch(s); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[m[3]]
		if r.requests > 0 {
			r.bytesPerReq = v * unit / float64(r.requests)
		}
	}
	if m := reSocket.FindStringSubmatch(s); m != nil {
		r.socketErrors = strings.TrimSpace(m[1])
	}
	return r, nil
}
