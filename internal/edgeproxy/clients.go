package edgeproxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies reads a list of CIDRs (or single addresses) of the
// load balancers, reverse proxies or CDNs in front of the proxy.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q: want a CIDR (10.0.0.0/8, 2001:db8::/32) or an address", s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// The headers a trusted proxy may name the client in.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded" // RFC 7239
)

// clients says who a connection's or a request's client is. From a
// trusted proxy only: the address a PROXY protocol v2 header gives (with
// proxyProtocol; the listener reads it), or, without, the one the header
// names (X-Forwarded-For or Forwarded); from anyone else those are
// ignored and the TCP peer is the client.
type clients struct {
	trusted       []netip.Prefix
	header        string // HeaderXForwardedFor or HeaderForwarded
	proxyProtocol bool
}

func newClients(trusted []netip.Prefix, header string, proxyProtocol bool) (*clients, error) {
	switch {
	case header == "" || strings.EqualFold(header, HeaderXForwardedFor):
		header = HeaderXForwardedFor
	case strings.EqualFold(header, HeaderForwarded):
		header = HeaderForwarded
	default:
		return nil, fmt.Errorf("client header %q: want %s or %s", header, HeaderXForwardedFor, HeaderForwarded)
	}
	if proxyProtocol && len(trusted) == 0 {
		return nil, errors.New("the PROXY protocol needs trusted proxies: the load balancers whose headers to read")
	}
	return &clients{trusted: trusted, header: header, proxyProtocol: proxyProtocol}, nil
}

// isTrusted reports whether a is one of the trusted proxies.
func (c *clients) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ofRequest is the client address of a request (whose RemoteAddr is the
// TCP peer, or what its PROXY protocol header said).
func (c *clients) ofRequest(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || c.proxyProtocol || !c.isTrusted(peer.Addr()) {
		return hostOf(r.RemoteAddr)
	}
	var hops []string
	for _, v := range r.Header.Values(c.header) {
		for _, hop := range strings.Split(v, ",") {
			if c.header == HeaderForwarded {
				hop = forwardedFor(hop)
			}
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	// The last hop was added by the peer, a trusted proxy: the client is
	// the last address from the right that is no trusted proxy (anything
	// left of it is whatever that client sent).
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		if !c.isTrusted(a) || i == 0 {
			return a.String()
		}
	}
	return peer.Addr().Unmap().String()
}

// forwardedFor is the for= parameter of one Forwarded element.
func forwardedFor(elem string) string {
	for _, pair := range strings.Split(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(k, "for") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// parseHop reads an address as proxies write them: 192.0.2.1,
// 192.0.2.1:4711, 2001:db8::1, [2001:db8::1]:4711.
func parseHop(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// hostOf is the address part of "host:port".
func hostOf(remote string) string {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().String()
	}
	return remote
}
