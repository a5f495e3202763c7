package gate

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
)

// checkDHCP waits for eth0's IPv4 address and checks it is a DHCP lease
// (a dynamic address, with a lifetime), not a static one. It returns the
// address ("" if none).
func (g *run) checkDHCP() string {
	var line string
	ok := g.poll(g.opts.BootTimeout, func() bool {
		out, err := g.exec(g.ctx, "ip -4 -o addr show dev eth0")
		line = strings.TrimSpace(out)
		return err == nil && strings.Contains(line, " inet ")
	})
	if !ok {
		g.add(CheckDHCP, false, "eth0 got no IPv4 address in %s", g.opts.BootTimeout)
		return ""
	}
	f := strings.Fields(line[strings.Index(line, " inet ")+1:])
	ip, _, _ := strings.Cut(f[1], "/")
	if !slices.Contains(f, "dynamic") {
		g.add(CheckDHCP, false, "eth0 has %s, but not from DHCP (a static address: %q)", ip, line)
		return ip
	}
	g.add(CheckDHCP, true, "eth0 got %s by DHCP", ip)
	return ip
}

// checkBoot waits for systemd to finish booting and checks no unit
// failed.
func (g *run) checkBoot() {
	var state string
	g.poll(g.opts.BootTimeout, func() bool {
		out, _ := g.exec(g.ctx, "systemctl is-system-running")
		state = strings.TrimSpace(out)
		return state == "running" || state == "degraded" || state == "maintenance"
	})
	switch state {
	case "running":
		g.add(CheckBoot, true, "systemd: running, no failed unit")
	case "degraded":
		out, _ := g.exec(g.ctx, "systemctl list-units --failed --plain --no-legend")
		var units []string
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				units = append(units, f[0])
			}
		}
		g.add(CheckBoot, false, "failed units: %s", strings.Join(units, ", "))
	default:
		if state == "" {
			state = "no answer"
		}
		g.add(CheckBoot, false, "boot not finished after %s (systemd: %s)", g.opts.BootTimeout, state)
	}
}

// checkHealth runs the appliance's health check until it passes or its
// timeout passes.
func (g *run) checkHealth(ip string) {
	hc := g.opts.Appliance.Health
	timeout := time.Duration(hc.Timeout) * time.Second
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	var last, what string
	if hc.HTTP != nil {
		what = fmt.Sprintf("GET :%d%s", hc.HTTP.Port, hc.HTTP.Path)
		if ip == "" {
			g.add(CheckHealth, false, "%s: the instance has no address", what)
			return
		}
	} else {
		what = fmt.Sprintf("command %q", hc.Command)
	}
	ok := g.poll(timeout, func() bool {
		if h := hc.HTTP; h != nil {
			status, body, err := g.h.Get(g.ctx, fmt.Sprintf("http://%s%s", net.JoinHostPort(ip, strconv.Itoa(h.Port)), h.Path))
			if err != nil {
				last = err.Error()
				return false
			}
			last = fmt.Sprintf("status %d, body %q", status, oneLine(body))
			return status == h.Status && strings.Contains(body, h.Contains)
		}
		args := append([]string{"exec", g.inst, "--"}, hc.Command...)
		out, err := g.h.Incus(g.ctx, args...)
		if err != nil {
			last = fmt.Sprintf("%v %s", err, oneLine(out))
			return false
		}
		return true
	})
	if !ok {
		g.add(CheckHealth, false, "%s did not pass in %s: %s", what, timeout, last)
		return
	}
	g.add(CheckHealth, true, "%s passed", what)
}

// checkPorts reads the instance's sockets and refuses any listener on a
// non-loopback address but the declared ports (and the DHCP client's
// 68/udp).
func (g *run) checkPorts() {
	out, err := g.exec(g.ctx, "cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6")
	if err != nil {
		g.add(CheckPorts, false, "cannot read the instance's sockets: %v", err)
		return
	}
	listeners, err := ParseSockets(out)
	if err != nil {
		g.add(CheckPorts, false, "%v", err)
		return
	}
	declared := g.opts.Appliance.PortList()
	var extra, seen []string
	for _, l := range listeners {
		switch {
		case l.Loopback():
			continue
		case slices.Contains(declared, l.Port):
			seen = append(seen, l.String())
		case l.Port == (appliance.Port{Number: 68, Proto: "udp"}) && !l.Wildcard():
			continue // the DHCP client, bound to the leased address
		default:
			extra = append(extra, l.String())
		}
	}
	if len(extra) > 0 {
		g.add(CheckPorts, false, "listening on undeclared ports: %s (declared: %s)", strings.Join(dedup(extra), ", "), portList(declared))
		return
	}
	g.add(CheckPorts, true, "listening: %s (declared: %s)", strings.Join(dedup(seen), ", "), portList(declared))
}

// checkService checks the declared service is active and its main
// process does not run as root but as the declared user.
func (g *run) checkService() {
	svc := g.opts.Appliance.Service
	if svc == nil {
		g.add(CheckService, false, "appliance.yaml declares no service: {unit, user}")
		return
	}
	out, err := g.exec(g.ctx, fmt.Sprintf(`pid=$(systemctl show -p MainPID --value %s) && echo "pid $pid" && grep ^Uid: /proc/$pid/status && echo "want $(id -u %s)"`, svc.Unit, svc.User))
	var pid, uid, want string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "pid":
			pid = f[1]
		case len(f) >= 3 && f[0] == "Uid:":
			uid = f[2] // effective
		case len(f) >= 2 && f[0] == "want":
			want = f[1]
		}
	}
	if pid == "" || pid == "0" {
		if rel, ok := g.waitingForRelations(svc.Unit); ok {
			g.add(CheckService, true, "%s waits for relation %s (held by its condition until wired): not started", svc.Unit, rel)
			return
		}
	}
	switch {
	case pid == "" || pid == "0":
		g.add(CheckService, false, "%s has no running main process (%v)", svc.Unit, err)
	case uid == "":
		g.add(CheckService, false, "%s: cannot read the main process's user (%v)", svc.Unit, err)
	case uid == "0":
		g.add(CheckService, false, "%s runs as root (pid %s)", svc.Unit, pid)
	case want == "" || uid != want:
		g.add(CheckService, false, "%s runs as uid %s, not as %s (uid %s)", svc.Unit, uid, svc.User, want)
	default:
		g.add(CheckService, true, "%s runs as %s (uid %s, pid %s)", svc.Unit, svc.User, uid, pid)
	}
}

// checkNoLogin refuses an sshd or a getty among the processes.
func (g *run) checkNoLogin() {
	out, err := g.exec(g.ctx, `for p in /proc/[0-9]*; do cat $p/comm 2>/dev/null; done`)
	if err != nil {
		g.add(CheckNoLogin, false, "cannot list the instance's processes: %v", err)
		return
	}
	var found []string
	for _, name := range strings.Fields(out) {
		if name == "sshd" || strings.Contains(name, "getty") {
			found = append(found, name)
		}
	}
	if len(found) > 0 {
		g.add(CheckNoLogin, false, "running: %s", strings.Join(dedup(found), ", "))
		return
	}
	g.add(CheckNoLogin, true, "no sshd, no getty among %d processes", len(strings.Fields(out)))
}

func portList(ps []appliance.Port) string {
	if len(ps) == 0 {
		return "none"
	}
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

func dedup(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// Listener is a listening TCP socket or a bound UDP socket.
type Listener struct {
	Addr net.IP
	Port appliance.Port
}

func (l Listener) Loopback() bool { return l.Addr.IsLoopback() }
func (l Listener) Wildcard() bool { return l.Addr.IsUnspecified() }
func (l Listener) String() string {
	return net.JoinHostPort(l.Addr.String(), strconv.Itoa(l.Port.Number)) + "/" + l.Port.Proto
}

// MarshalJSON keeps listeners readable in reports.
func (l Listener) MarshalJSON() ([]byte, error) { return json.Marshal(l.String()) }

// ParseSockets reads /proc/net/{tcp,tcp6,udp,udp6} concatenated (each
// with its header line): the TCP sockets in LISTEN state and the
// unconnected UDP sockets.
func ParseSockets(s string) ([]Listener, error) {
	var out []Listener
	proto := ""
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "sl" {
			// a header: tcp has "tx_queue rx_queue tr tm->when" and no
			// "drops"; udp ends with "drops".
			proto = "tcp"
			if f[len(f)-1] == "drops" {
				proto = "udp"
			}
			continue
		}
		if len(f) < 4 || proto == "" {
			return nil, fmt.Errorf("socket table: unexpected line %q", line)
		}
		state := f[3]
		if proto == "tcp" && state != "0A" || proto == "udp" && state != "07" {
			continue
		}
		addr, port, err := parseHexAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("socket table line %q: %w", line, err)
		}
		out = append(out, Listener{Addr: addr, Port: appliance.Port{Number: port, Proto: proto}})
	}
	return out, nil
}

// parseHexAddr reads the kernel's "0100007F:0050" (IPv4) or 32-hex-digit
// IPv6 address: 32-bit words in host (little-endian) order.
func parseHexAddr(s string) (net.IP, int, error) {
	a, p, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil || (len(a) != 8 && len(a) != 32) {
		return nil, 0, fmt.Errorf("bad address %q", s)
	}
	ip := make(net.IP, len(a)/2)
	for w := 0; w < len(a)/8; w++ {
		word, err := strconv.ParseUint(a[w*8:w*8+8], 16, 32)
		if err != nil {
			return nil, 0, fmt.Errorf("bad address %q", s)
		}
		for b := 0; b < 4; b++ {
			ip[w*4+b] = byte(word >> (8 * b))
		}
	}
	return ip, int(port), nil
}
