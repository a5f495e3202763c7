package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/miniotest"
)

// runEdgeproxy starts the edgeproxy binary with a self-signed certificate
// and returns the URL from its announcement and the certificate file.
func runEdgeproxy(t *testing.T, env []string, args ...string) (url, cert string) {
	t.Helper()
	return startEdgeproxy(t, env, nil, append(args, "--quiet")...)
}

// runEdgeproxyLogged is runEdgeproxy with the access log kept.
func runEdgeproxyLogged(t *testing.T, args ...string) (url, cert string, log *accessLog) {
	t.Helper()
	log = &accessLog{}
	url, cert = startEdgeproxy(t, nil, log, args...)
	return url, cert, log
}

// startEdgeproxy starts edgeproxy on a free port of 127.0.0.1 with a
// self-signed certificate, its access log (stdout) going to log when not
// nil, stopped when the test ends; it waits for the announcement (which
// must give the certificate's fingerprint) and returns its URL and the
// certificate file.
func startEdgeproxy(t *testing.T, env []string, log *accessLog, args ...string) (url, cert string) {
	t.Helper()
	run := launchEdgeproxy(t, env, log, t.TempDir(), args...)
	return run.url, run.cert
}

// edgeRun is a running edgeproxy: its URL, certificate file and metrics
// page.
type edgeRun struct{ url, cert, metrics string }

// launchEdgeproxy is startEdgeproxy with its state folder given, returning
// also the URL of its metrics page.
func launchEdgeproxy(t *testing.T, env []string, log *accessLog, state string, args ...string) edgeRun {
	t.Helper()
	cmd := exec.Command(edgeproxyBin, append(args, "--listen", "127.0.0.1:0", "--self-signed", "--hostname", "127.0.0.1", "--hostname", "localhost", "--state-dir", state, "--metrics-listen", "127.0.0.1:0")...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if log != nil {
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		go log.collect(stdout)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// With --tokens the URL ends in a placeholder: "/<TOKEN>".
	re := regexp.MustCompile(`incus remote add appliance (https://\S+?)(?:/<TOKEN>)? --protocol simplestreams`)
	metrics := regexp.MustCompile(`^edgeproxy: metrics on (http://\S+)$`)
	var seen []string
	var run edgeRun
	timeout := time.After(2 * time.Minute) // generous: a busy machine
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("edgeproxy exited: %s", strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if m := re.FindStringSubmatch(l); m != nil {
				if !strings.Contains(strings.Join(seen, "\n"), "SHA-256 fingerprint") {
					t.Errorf("announcement lacks the certificate fingerprint:\n%s", strings.Join(seen, "\n"))
				}
				run.url, run.cert = m[1], filepath.Join(state, "selfsigned.crt")
			}
			if m := metrics.FindStringSubmatch(l); m != nil {
				run.metrics = m[1]
			}
			if run.url != "" && run.metrics != "" {
				go func() {
					for range lines {
					}
				}()
				return run
			}
		case <-timeout:
			t.Fatalf("no 'incus remote add' line from edgeproxy: %s", strings.Join(seen, "\n"))
		}
	}
}

// edgeproxyExit runs edgeproxy with args, expecting it to exit (a refused
// configuration), and returns what it printed and how it ended.
func edgeproxyExit(args ...string) (string, error) {
	out, err := exec.Command(edgeproxyBin, args...).CombinedOutput()
	return string(out), err
}

// accessLog collects edgeproxy's JSON access log.
type accessLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *accessLog) paths(from int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines[min(from, len(l.lines)):] {
		var e struct {
			Path   string
			Status int
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Path != "" {
			out = append(out, e.Path)
		}
	}
	return out
}

func (l *accessLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *accessLog) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		l.mu.Unlock()
	}
}

// The real incus client through edgeproxy, in front of (a) a private MinIO
// bucket read with signed requests and (b) a local registry folder: list,
// info, and export with fingerprint check. Incus first tries plain HTTP on
// the TLS port for image files; the export shows the fallback is fast.
func TestIncusThroughEdgeproxy(t *testing.T) {
	srv := miniotest.Start(t, miniotest.Options{Buckets: []string{"private"}})
	env := srv.Env()
	folder := filepath.Join(t.TempDir(), "registry")
	v := versions(t, "nginx", 2)
	for _, bucket := range []string{"s3://private/reg", folder} {
		publishNginxAndWeb(t, env, v, "--bucket", bucket)
	}
	// The bucket really is private.
	if resp, err := srv.HTTPClient().Get(srv.Endpoint + "/private/reg/streams/v1/index.json"); err != nil || resp.StatusCode != 403 {
		t.Fatalf("anonymous read of the bucket: %v %v, want 403", resp.StatusCode, err)
	}
	for _, bucket := range []string{"s3://private/reg", folder} {
		t.Run(filepath.Base(bucket), func(t *testing.T) {
			url, cert := runEdgeproxy(t, env, "--bucket", bucket)
			incus := remoteClient(t, "incus", "appliance", url, cert)
			took := incus.wantNginxAndWeb(t, "appliance", v)
			if took > 5*time.Second {
				t.Errorf("export took %s: the plain-HTTP attempt on the TLS port must fail fast", took)
			}
			t.Logf("%s: incus image export (plain-HTTP attempt, then HTTPS) took %s", bucket, took.Round(time.Millisecond))
		})
	}
}
