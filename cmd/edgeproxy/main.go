// Command edgeproxy serves a registry bucket (S3, MinIO), a local registry
// folder, or an HTTP(S) origin over HTTPS to Incus clients: the thin,
// hardened front a self-hosted registry puts where production has a CDN.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/incus-appliance/registry/internal/edgeproxy"
	"github.com/incus-appliance/registry/internal/location"
	"github.com/incus-appliance/registry/internal/signing"
)

// CLI is the command line.
type CLI struct {
	Bucket string `short:"b" placeholder:"LOCATION" help:"Registry to serve: s3://bucket[/prefix] (read with signed requests, so the bucket stays private) or a local registry folder."`
	Origin string `placeholder:"URL" help:"Serve a registry from a plain HTTP(S) origin instead of --bucket."`
	Listen string `placeholder:"ADDR" help:"Listen address (default :8443, or :$PORT when PORT is set)."`

	Cert           string   `placeholder:"FILE" help:"TLS certificate (PEM), reloaded when it changes."`
	Key            string   `placeholder:"FILE" help:"TLS private key (PEM)."`
	SelfSigned     bool     `help:"Create (kept in --state-dir, renewed 30 days before its year is up) a self-signed certificate for the --hostname names only: no CA, constrained to those names."`
	Hostname       []string `placeholder:"NAME" help:"Host names/addresses the self-signed certificate covers (repeatable; default: this host, localhost, 127.0.0.1, ::1)."`
	ACMEDomain     []string `name:"acme-domain" placeholder:"DOMAIN" help:"Get certificates for DOMAIN with ACME (repeatable)."`
	ACMEDirectory  string   `name:"acme-directory" placeholder:"URL" help:"ACME directory (default Let's Encrypt production)."`
	ACMEEmail      string   `name:"acme-email" placeholder:"EMAIL" help:"Contact address for the ACME account."`
	ACMEHTTPListen string   `name:"acme-http-listen" placeholder:"ADDR" help:"Also serve ACME HTTP-01 challenges here (e.g. :80); TLS-ALPN-01 works on the main port without it."`
	PlainHTTP      bool     `help:"Serve plain HTTP (only behind a TLS-terminating load balancer: Incus needs HTTPS)."`
	StateDir       string   `default:"edgeproxy-state" placeholder:"DIR" help:"Where the self-signed certificate and ACME data are kept."`
	RemoteName     string   `default:"appliance" help:"Remote name used in the printed 'incus remote add' line."`
	PublicURL      string   `name:"public-url" placeholder:"URL" help:"The URL clients add the registry as, shown on the catalog page (default: https://HOST:PORT from the ACME domain or the first --hostname and the listen port); behind a load balancer, its URL."`

	location.AWS

	CatalogTTL        time.Duration `default:"2s" help:"How long catalog JSON is kept in memory."`
	CatalogMaxAge     time.Duration `default:"60s" help:"Cache-Control max-age of streams/v1/*.json (image files are immutable for a year)."`
	MaxOriginRequests int           `default:"512" help:"Cap on concurrent origin reads."`
	WriteTimeout      time.Duration `default:"60s" help:"Cut a client that accepts no data for this long."`
	ShutdownTimeout   time.Duration `default:"30s" help:"On SIGTERM, how long in-flight downloads may finish."`
	Quiet             bool          `short:"q" help:"No access logs (JSON on stdout by default)."`
	MemoryLimit       int64         `default:"48000000" help:"Soft Go memory limit in bytes (GOMEMLIMIT wins when set; 0: none)."`

	MetricsListen     string        `default:"127.0.0.1:9108" placeholder:"ADDR" help:"Serve Prometheus /metrics here (plain HTTP; never on the public port). Empty: nowhere."`
	HealthInterval    time.Duration `default:"5s" help:"/healthz probes the origin at most this often and answers from the last probe in between."`
	CacheDir          string        `placeholder:"DIR" help:"On-disk cache of image files (default: <state-dir>/image-cache). Each file the catalog names is read from the origin once, checked against its sha256, and served from disk."`
	CacheSize         int64         `default:"10737418240" placeholder:"BYTES" help:"Bytes the image cache may hold (least recently used files go first); 0: no cache, image files stream from the origin."`
	MaxFills          int           `default:"8" help:"Image files fetched into the cache at once (at most half of --max-origin-requests); one client address may start a quarter of them."`
	OriginIdleTimeout time.Duration `default:"30s" help:"A fetch into the cache whose origin sends nothing for this long fails (the file is then refused for a back-off period)."`
	MaxConnsPerClient int           `default:"256" help:"Open connections one client (an IPv4 address, an IPv6 /64) may hold (-1: no limit)."`
	ClientRate        float64       `default:"100" help:"Requests a second one client (an IPv4 address, an IPv6 /64) may make on average (-1: no limit)."`
	ClientBurst       int           `default:"400" help:"Requests one client address may make in a burst."`
	MinRate           float64       `default:"16384" placeholder:"BYTES/S" help:"A client must take downloads at this many bytes a second on average (time blocked writing to it: at most 10 s plus the bytes it acknowledged / rate) or be cut, its connection reset (-1: no minimum)."`
	SendBuffer        int           `placeholder:"BYTES" help:"Cap each client socket's send buffer (default: the kernel's autotuning): less kernel memory per stalled client, but at most this much in flight per round trip."`
	Tokens            string        `placeholder:"FILE" help:"Private registry: serve only under https://HOST/<token>/ for the tokens in FILE (one 'TOKEN [NAME]' a line; re-read when it changes)."`

	TrustedProxies []string `name:"trusted-proxies" sep:"," placeholder:"CIDR" help:"Load balancers, reverse proxies or CDNs in front (CIDRs or addresses): from them only, the client address is read from --client-header, or from the PROXY protocol v2 header with --proxy-protocol; limits and access logs use it."`
	ClientHeader   string   `default:"X-Forwarded-For" enum:"X-Forwarded-For,x-forwarded-for,Forwarded,forwarded" help:"The header the trusted proxies write the client address in: X-Forwarded-For or Forwarded (RFC 7239)."`
	ProxyProtocol  bool     `name:"proxy-protocol" help:"Trusted proxies open each connection with a PROXY protocol v2 header (HAProxy send-proxy-v2, AWS NLB); HTTP headers are then not read."`

	Keyring string `placeholder:"FILE" help:"Serve the catalog only as extracted from signed .sjson documents that verify with these public keys (armoured or binary, any number): a bad or unknown signature, an expired catalog, an older registry_serial than the last verified (kept in --state-dir) or an index and product files of different signed moments are refused, the last verified catalog still served; image files go out only through the image cache, checked against it."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	var cli CLI
	kong.Parse(&cli, kong.Name("edgeproxy"), kong.Description("Serve an Incus image registry over HTTPS from a bucket, a registry folder or an HTTP origin."))
	if err := cli.run(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "edgeproxy: error: %v\n", err)
		os.Exit(1)
	}
}

func (c *CLI) run(ctx context.Context, stdout, stderr io.Writer) error {
	origin, desc, err := c.origin(ctx)
	if err != nil {
		return err
	}
	listen := c.Listen
	if listen == "" {
		listen = ":8443"
		if p := os.Getenv("PORT"); p != "" {
			listen = ":" + p
		}
	}
	var logw io.Writer = stdout
	level := slog.LevelInfo
	if c.Quiet {
		logw, level = io.Discard, slog.LevelError+1
	}
	if c.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit keeps the heap (and RSS) near what is live under
		// hundreds of concurrent downloads.
		debug.SetMemoryLimit(c.MemoryLimit)
	}
	if c.Tokens != "" && c.ACMEHTTPListen != "" {
		// Incus fetches image files over http:// first: anything answering
		// on port 80 would receive the token in clear text.
		return errors.New("--tokens and --acme-http-listen do not go together: Incus first asks for image files over plain HTTP, and a listener there would receive the token in clear text (use TLS-ALPN-01 on the main port)")
	}
	cacheDir := c.CacheDir
	if cacheDir == "" {
		cacheDir = filepath.Join(c.StateDir, "image-cache")
	}
	trusted, err := edgeproxy.ParseTrustedProxies(c.TrustedProxies)
	if err != nil {
		return err
	}
	var keyring *signing.Keyring
	if c.Keyring != "" {
		if keyring, err = signing.ReadKeyring(c.Keyring); err != nil {
			return err
		}
	}
	srv, err := edgeproxy.New(edgeproxy.Config{
		Origin: origin, Listen: listen,
		CertFile: c.Cert, KeyFile: c.Key, SelfSigned: c.SelfSigned, Hostnames: c.Hostname,
		ACMEDomains: c.ACMEDomain, ACMEDirectory: c.ACMEDirectory, ACMEEmail: c.ACMEEmail,
		PlainHTTP: c.PlainHTTP, StateDir: c.StateDir, PublicURL: c.PublicURL,
		CatalogTTL: c.CatalogTTL, CatalogMaxAge: c.CatalogMaxAge, MaxOriginRequests: c.MaxOriginRequests,
		WriteTimeout: c.WriteTimeout, ShutdownTimeout: c.ShutdownTimeout,
		MetricsListen: c.MetricsListen, HealthInterval: c.HealthInterval,
		CacheDir: cacheDir, CacheSize: c.CacheSize, MaxFills: c.MaxFills, OriginIdleTimeout: c.OriginIdleTimeout,
		MaxConnsPerClient: c.MaxConnsPerClient, ClientRate: c.ClientRate, ClientBurst: c.ClientBurst,
		MinTransferRate: c.MinRate, SendBuffer: c.SendBuffer, TokensFile: c.Tokens, RemoteName: c.RemoteName,
		TrustedProxies: trusted, ClientHeader: c.ClientHeader, ProxyProtocol: c.ProxyProtocol, Keyring: keyring,
		Logger: slog.New(slog.NewJSONHandler(logw, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		return err
	}
	if h := srv.ACMEChallengeHandler(); h != nil && c.ACMEHTTPListen != "" {
		acme := &http.Server{Addr: c.ACMEHTTPListen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go acme.ListenAndServe()
		defer acme.Close()
	}
	c.announce(stderr, srv, desc, keyring)
	return srv.Run(ctx)
}

// origin opens what --bucket or --origin names.
func (c *CLI) origin(ctx context.Context) (edgeproxy.Origin, string, error) {
	switch {
	case c.Bucket != "" && c.Origin != "":
		return nil, "", errors.New("give --bucket or --origin, not both")
	case c.Origin != "":
		o, err := edgeproxy.NewHTTPOrigin(c.Origin, nil)
		return o, c.Origin, err
	case c.Bucket != "":
		loc, err := location.Parse(c.Bucket)
		if err != nil {
			return nil, "", err
		}
		s, err := location.Open(ctx, loc, location.Options{AWS: c.AWS})
		if err != nil {
			return nil, "", err
		}
		return s, loc.String(), nil
	}
	return nil, "", errors.New("nothing to serve: give --bucket LOCATION or --origin URL")
}

// announce tells the operator where the registry is and how to add it.
func (c *CLI) announce(w io.Writer, srv *edgeproxy.Server, desc string, keyring *signing.Keyring) {
	url := srv.PublicURL()
	_, port, _ := net.SplitHostPort(srv.Addr().String())
	fmt.Fprintf(w, "edgeproxy: serving %s on %s (listening on %s)\n", desc, url, srv.Addr())
	if ss := srv.SelfSignedCert(); ss != nil {
		fmt.Fprintf(w, "edgeproxy: self-signed certificate %s (valid until %s; a new one is made 30 days before, to be pinned again)\n",
			ss.CertFile, ss.NotAfter.UTC().Format(time.DateOnly))
		fmt.Fprintf(w, "edgeproxy: SHA-256 fingerprint %s\n", ss.Fingerprint)
		fmt.Fprintf(w, "edgeproxy: on each Incus client, pin it for this remote only (copy %s to ~/.config/incus/servercerts/%s.crt), then:\n", ss.CertFile, c.RemoteName)
	}
	if c.Tokens != "" {
		// The token is never printed: the operator knows it.
		fmt.Fprintf(w, "edgeproxy: private registry: only under %s/<TOKEN>/ for the tokens in %s\n", url, c.Tokens)
		fmt.Fprintf(w, "  incus remote add %s %s/<TOKEN> --protocol simplestreams\n", c.RemoteName, url)
		if port != "443" {
			fmt.Fprintf(w, "edgeproxy: warning: Incus asks for image files over http://HOST:%s/<TOKEN>/... first, in clear text, before falling back to HTTPS: on any port but 443 (with nothing listening on port 80) the token crosses the network unencrypted\n", port)
		}
	} else {
		fmt.Fprintf(w, "  incus remote add %s %s --protocol simplestreams\n", c.RemoteName, url)
	}
	if keyring != nil {
		var keys []string
		for _, f := range keyring.Fingerprints() {
			keys = append(keys, string(f))
		}
		fmt.Fprintf(w, "edgeproxy: the catalog is served only as signed by the keys of %s (%s); refusals are logged and counted in edgeproxy_catalog_refusals_total\n",
			c.Keyring, strings.Join(keys, ", "))
	}
	if a := srv.MetricsAddr(); a != nil {
		fmt.Fprintf(w, "edgeproxy: metrics on http://%s/metrics\n", a)
	}
}
