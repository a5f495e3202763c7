package gate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
)

// What a healthy nginx appliance answers (taken from a real run).
const (
	procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 64515 1 00000000e094cb33 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 64515 1 00000000e094cb33 100 0 0 10 0
   2: F807C90A:0050 0107C90A:D431 01 00000000:00000000 00:00000000 00000000    33        0 64515 1 00000000e094cb33 100 0 0 10 0
`
	procNetTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 64516 1 000000007d2cec73 100 0 0 10 0
`
	procNetUDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
11375: F807C90A:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000   998        0 63703 2 00000000143b4281 0
`
	procNetUDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
`
	sshdTCP = `   3: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 64515 1 00000000e094cb33 100 0 0 10 0
`
)

// fakeHost answers like a daemon running a healthy nginx appliance;
// tests change one answer to break one check.
type fakeHost struct {
	mu       sync.Mutex
	answers  map[string]string // command substring → stdout
	failing  map[string]string // command substring → error
	httpCode int
	calls    []string
}

func newFakeHost() *fakeHost {
	return &fakeHost{httpCode: 200, failing: map[string]string{}, answers: map[string]string{
		"image import":           "Image imported with fingerprint: " + strings.Repeat("ab", 32) + "\n",
		"ip -4 -o addr":          "9: eth0    inet 10.201.7.248/24 metric 1024 brd 10.201.7.255 scope global dynamic eth0\\       valid_lft 3599sec preferred_lft 3599sec\n",
		"is-system-running":      "running\n",
		"list-units --failed":    "",
		"/proc/net/tcp":          procNetTCP + procNetTCP6 + procNetUDP + procNetUDP6,
		"systemctl show -p Main": "pid 160\nUid:\t33\t33\t33\t33\nwant 33\n",
		"/comm":                  "systemd\nsystemd-journal\nsystemd-network\ndbus-daemon\nnginx\nnginx\nsh\n",
	}}
}

// record notes cmd and returns the error failing gives it (the caller
// holds f.mu).
func (f *fakeHost) record(cmd string) error {
	f.calls = append(f.calls, cmd)
	for k, e := range f.failing {
		if strings.Contains(cmd, k) {
			return errors.New(e)
		}
	}
	return nil
}

func (f *fakeHost) Incus(ctx context.Context, args ...string) (string, error) {
	cmd := strings.Join(args, " ")
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(cmd); err != nil {
		return "", err
	}
	for k, v := range f.answers {
		if strings.Contains(cmd, k) {
			return v, nil
		}
	}
	return "", nil
}

func (f *fakeHost) Get(ctx context.Context, url string) (int, string, error) {
	if url != "http://10.201.7.248:80/healthz" {
		return 0, "", fmt.Errorf("unexpected URL %s", url)
	}
	return f.httpCode, "ok\n", nil
}

func (f *fakeHost) called(prefix string) bool {
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

func nginx(t *testing.T) *appliance.Appliance {
	t.Helper()
	a, err := appliance.Load(filepath.Join("..", "..", "appliances"), "nginx")
	if err != nil {
		t.Fatal(err)
	}
	a.Health.Timeout = 1
	return a
}

func runGate(t *testing.T, h *fakeHost, a *appliance.Appliance) *Report {
	t.Helper()
	rep, err := Run(context.Background(), Options{Appliance: a, Arch: "amd64", Metadata: "m", Rootfs: "r", Host: h, Poll: time.Millisecond, BootTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Whatever the result, the instance and the imported image are gone.
	if !h.called("delete --force gate-nginx-") || !h.called("image delete "+strings.Repeat("ab", 32)) {
		t.Errorf("gate did not clean up: %q", h.calls)
	}
	return rep
}

func TestGatePassesAHealthyAppliance(t *testing.T) {
	rep := runGate(t, newFakeHost(), nginx(t))
	if !rep.Passed || len(rep.Checks) != 7 {
		t.Fatalf("report: %+v", rep)
	}
	want := []string{CheckLaunch, CheckDHCP, CheckBoot, CheckHealth, CheckPorts, CheckService, CheckNoLogin}
	for i, c := range rep.Checks {
		if c.Name != want[i] || !c.Passed {
			t.Errorf("check %d: %+v, want %s passed", i, c, want[i])
		}
	}
	if d := rep.Checks[4].Detail; d != "listening: 0.0.0.0:80/tcp, [::]:80/tcp (declared: 80/tcp)" {
		t.Errorf("ports detail %q", d)
	}
	dir := t.TempDir()
	if err := rep.Save(dir); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "gate.json")); !strings.Contains(string(data), `"passed": true`) {
		t.Errorf("gate.json: %s", data)
	}
}

// Each broken property fails its own check, named, and only that one.
func TestGateFailsEachBrokenProperty(t *testing.T) {
	tests := []struct {
		name, check, detail string
		breakIt             func(h *fakeHost, a *appliance.Appliance)
	}{
		{"health check fails", CheckHealth, "GET :80/healthz did not pass in 1s: status 500", func(h *fakeHost, a *appliance.Appliance) { h.httpCode = 500 }},
		{"a unit failed", CheckBoot, "failed units: nginx.service", func(h *fakeHost, a *appliance.Appliance) {
			h.answers["is-system-running"] = "degraded\n"
			h.answers["list-units --failed"] = "nginx.service loaded failed failed A high performance web server\n"
		}},
		{"boot never finishes", CheckBoot, "boot not finished after 100ms (systemd: starting)", func(h *fakeHost, a *appliance.Appliance) { h.answers["is-system-running"] = "starting\n" }},
		{"undeclared port", CheckPorts, "listening on undeclared ports: 0.0.0.0:22/tcp (declared: 80/tcp)", func(h *fakeHost, a *appliance.Appliance) {
			h.answers["/proc/net/tcp"] = procNetTCP + sshdTCP + procNetTCP6 + procNetUDP + procNetUDP6
		}},
		{"nothing declared", CheckPorts, "listening on undeclared ports: 0.0.0.0:80/tcp, [::]:80/tcp (declared: none)", func(h *fakeHost, a *appliance.Appliance) { a.Ports = nil }},
		{"service as root", CheckService, "nginx.service runs as root (pid 160)", func(h *fakeHost, a *appliance.Appliance) {
			h.answers["systemctl show -p Main"] = "pid 160\nUid:\t0\t0\t0\t0\nwant 33\n"
		}},
		{"service as another user", CheckService, "nginx.service runs as uid 1000, not as www-data (uid 33)", func(h *fakeHost, a *appliance.Appliance) {
			h.answers["systemctl show -p Main"] = "pid 160\nUid:\t1000\t1000\t1000\t1000\nwant 33\n"
		}},
		{"service not running", CheckService, "nginx.service has no running main process", func(h *fakeHost, a *appliance.Appliance) {
			h.answers["systemctl show -p Main"] = "pid 0\n"
		}},
		{"no service declared", CheckService, "declares no service", func(h *fakeHost, a *appliance.Appliance) { a.Service = nil }},
		{"sshd running", CheckNoLogin, "running: sshd", func(h *fakeHost, a *appliance.Appliance) { h.answers["/comm"] += "sshd\n" }},
		{"getty running", CheckNoLogin, "running: agetty", func(h *fakeHost, a *appliance.Appliance) { h.answers["/comm"] += "agetty\n" }},
		{"static address", CheckDHCP, "not from DHCP", func(h *fakeHost, a *appliance.Appliance) {
			h.answers["ip -4 -o addr"] = "9: eth0    inet 10.201.7.248/24 brd 10.201.7.255 scope global eth0\\       valid_lft forever preferred_lft forever\n"
		}},
		{"no address", CheckDHCP, "eth0 got no IPv4 address", func(h *fakeHost, a *appliance.Appliance) { h.answers["ip -4 -o addr"] = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, a := newFakeHost(), nginx(t)
			tt.breakIt(h, a)
			rep := runGate(t, h, a)
			if rep.Passed {
				t.Fatalf("passed: %+v", rep.Checks)
			}
			var failed []string
			for _, c := range rep.Checks {
				if !c.Passed {
					failed = append(failed, c.Name)
				}
			}
			f := rep.Failed()
			if f.Name != tt.check || !strings.Contains(f.Detail, tt.detail) {
				t.Errorf("first failed check %+v, want %s containing %q", f, tt.check, tt.detail)
			}
			if tt.check != CheckDHCP && len(failed) != 1 { // no address fails health too
				t.Errorf("failed checks %v, want only %s", failed, tt.check)
			}
		})
	}
}

func TestGateCannotRunWithoutDaemon(t *testing.T) {
	h := newFakeHost()
	h.failing["info"] = "Error: The incus daemon doesn't appear to be started (socket path: /var/lib/incus/unix.socket)"
	_, err := Run(context.Background(), Options{Appliance: nginx(t), Host: h})
	if !errors.Is(err, ErrNoDaemon) || !strings.Contains(err.Error(), "--skip-gate") {
		t.Errorf("err = %v", err)
	}
}

func TestGateLaunchFailureIsAFailedCheck(t *testing.T) {
	h := newFakeHost()
	h.failing["launch"] = "Error: Failed instance creation"
	rep, err := Run(context.Background(), Options{Appliance: nginx(t), Host: h, Poll: time.Millisecond})
	if err != nil || rep.Passed || rep.Failed().Name != CheckLaunch {
		t.Errorf("rep %+v, err %v", rep, err)
	}
}

func TestParseSocketsIPv6(t *testing.T) {
	ls, err := ParseSockets(procNetTCP6 + `   1: 00000000000000000000000001000000:18EB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 1 1 0 100 0 0 10 0
`)
	if err != nil || len(ls) != 2 || ls[0].String() != "[::]:80/tcp" || ls[1].String() != "[::1]:6379/tcp" || !ls[1].Loopback() {
		t.Errorf("ParseSockets = %v, %v", ls, err)
	}
	if _, err := ParseSockets("   0: zz\n"); err == nil {
		t.Error("garbage accepted")
	}
}

func (f *fakeHost) Pipe(ctx context.Context, from, to []string) (string, error) {
	cmd := "pipe " + strings.Join(from, " ") + " | " + strings.Join(to, " ")
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(cmd); err != nil {
		return "", err
	}
	return "db: configured (database miniflux)\n", nil
}
