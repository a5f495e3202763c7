package appliance

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Port is a port the appliance listens on, written "80/tcp" or "53/udp"
// in appliance.yaml.
type Port struct {
	Number int
	Proto  string // tcp or udp
}

func (p Port) String() string { return fmt.Sprintf("%d/%s", p.Number, p.Proto) }

// parsePort reads "NUMBER/PROTO" (PROTO tcp or udp).
func parsePort(s string) (Port, error) {
	num, proto, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 1 || n > 65535 || num != strconv.Itoa(n) {
		return Port{}, fmt.Errorf("%q is not PORT/PROTO, e.g. 80/tcp or 53/udp", s)
	}
	if proto != "tcp" && proto != "udp" {
		return Port{}, fmt.Errorf("%q: protocol must be tcp or udp", s)
	}
	return Port{Number: n, Proto: proto}, nil
}

// Service is the appliance's main systemd service and the (non-root)
// user it runs as.
type Service struct {
	Unit string `yaml:"unit"`
	User string `yaml:"user"`
}

var (
	unitRe = regexp.MustCompile(`^[A-Za-z0-9:_.@-]+\.service$`)
	userRe = regexp.MustCompile(`^[a-z_][a-z0-9_-]*\$?$`)
)

// PortList returns the declared ports (Load checked them).
func (a *Appliance) PortList() []Port {
	var out []Port
	for _, s := range a.Ports {
		if p, err := parsePort(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// checkRuntime validates ports and service.
func (a *Appliance) checkRuntime(bad func(field, format string, args ...any)) {
	seen := map[Port]bool{}
	for _, s := range a.Ports {
		p, err := parsePort(s)
		if err != nil {
			bad("ports", "%v", err)
			continue
		}
		if seen[p] {
			bad("ports", "%s is listed twice", s)
		}
		seen[p] = true
	}
	if _, ok := a.Custom["ports"]; ok && len(a.Ports) > 0 {
		bad("custom", "ports: declare ports in the ports field only (ports: [80/tcp])")
	}
	if a.Service == nil {
		return
	}
	if !unitRe.MatchString(a.Service.Unit) {
		bad("service", "unit %q must be a systemd service name, e.g. nginx.service", a.Service.Unit)
	}
	switch {
	case a.Service.User == "":
		bad("service", "user missing: the (non-root) user the service runs as")
	case a.Service.User == "root" || a.Service.User == "0":
		bad("service", "user must not be root: an appliance's service runs unprivileged")
	case !userRe.MatchString(a.Service.User):
		bad("service", "user %q is not a user name", a.Service.User)
	}
}

// catalogCustom is the custom metadata carried into the catalog: custom,
// plus the declared ports as "ports" (the key appliances used before
// ports became a field).
func (a *Appliance) catalogCustom() map[string]string {
	if len(a.Ports) == 0 {
		return a.Custom
	}
	out := map[string]string{"ports": strings.Join(a.Ports, ",")}
	for k, v := range a.Custom {
		out[k] = v
	}
	return out
}
