// Package edgeproxy is a thin, hardened HTTPS front for a registry kept in
// a bucket (S3, MinIO), a local registry folder, or behind a plain HTTP(S)
// origin: what a self-hosted registry puts where production has a CDN.
//
// It serves only what a SimpleStreams client needs — GET and HEAD of
// streams/v1/index.json, the catalog files it names, images/..., a plain
// HTML catalog page and /healthz — with correct HTTP semantics (Range,
// conditional requests, HEAD, content types, Cache-Control by class), a
// short in-memory cache with request collapsing for the catalog, a
// verified on-disk LRU cache of the image files the catalog names (one
// origin read per file; slow clients read the local file, never an origin
// connection), per-client connection and request-rate limits (the client
// named by trusted load balancers' X-Forwarded-For, Forwarded or PROXY
// protocol header when behind them), a minimum transfer rate, one cap on every origin call, optional access
// tokens in the URL path, and no origin detail (S3 error bodies, x-amz-*
// headers) ever reaching a client. Metrics are served on a listener of
// their own. TLS comes from certificate files (reloaded when they change),
// a kept self-signed CA certificate, or ACME.
package edgeproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/signing"
	"github.com/incus-appliance/registry/internal/store"
)

// Config configures a Server. Zero values take the defaults noted.
type Config struct {
	// Origin is where the registry is read from.
	Origin Origin
	// Listen is the address to listen on (default ":8443").
	Listen string

	// TLS: certificate files, or SelfSigned, or ACMEDomains; PlainHTTP
	// serves without TLS (behind a TLS-terminating load balancer only).
	CertFile, KeyFile string
	SelfSigned        bool
	// Hostnames are the names and addresses a self-signed certificate
	// covers (default: localhost, 127.0.0.1, ::1 and the host name).
	Hostnames   []string
	ACMEDomains []string
	// ACMEDirectory is the ACME directory URL (default Let's Encrypt).
	ACMEDirectory string
	ACMEEmail     string
	// ACMEHTTPClient talks to the ACME server (tests trust a test CA).
	ACMEHTTPClient *http.Client
	PlainHTTP      bool
	// StateDir keeps the self-signed certificate and ACME account and
	// certificates (default ./edgeproxy-state).
	StateDir string

	// CatalogTTL is how long catalog JSON is kept in memory (default 2s).
	CatalogTTL time.Duration
	// CatalogMaxAge is the Cache-Control max-age of catalog JSON (default
	// 60s); image files are always "immutable" for a year.
	CatalogMaxAge time.Duration
	// MaxOriginRequests caps concurrent origin reads (default 512); a
	// request waits up to 10 s for a slot, then gets 503.
	MaxOriginRequests int
	// WriteTimeout cuts a client that accepts no data for this long
	// (default 60s); ReadHeaderTimeout and IdleTimeout guard against slow
	// and idle connections (defaults 10s and 60s).
	WriteTimeout, ReadHeaderTimeout, IdleTimeout time.Duration
	// ShutdownTimeout is how long in-flight requests may finish after the
	// context ends (default 30s).
	ShutdownTimeout time.Duration
	// Logger receives JSON access logs (default: discard).
	Logger *slog.Logger

	// MetricsListen is where /metrics is served (plain HTTP, GET and HEAD);
	// empty: nowhere. Never on the public port.
	MetricsListen string
	// HealthInterval is the most often /healthz probes the origin (default
	// 5s); answers in between are the cached result.
	HealthInterval time.Duration

	// CacheDir keeps image files named by the catalog, each read from the
	// origin once and verified against its sha256, up to CacheSize bytes
	// (least recently used first out). Empty: image files stream from the
	// origin (each download holding an origin slot).
	CacheDir  string
	CacheSize int64
	// MaxFills caps the image files fetched into the cache at once
	// (default 8, and never more than half of MaxOriginRequests); one
	// client address may start a quarter of them (at least one). A fill
	// holds its file's size against CacheSize from its start; a file whose
	// fill failed (origin error, stall, bytes not matching the catalog) is
	// refused for a back-off period (30 s, doubling with each failure in
	// a row, up to 30 min). Requests that find no fill free get 503.
	MaxFills int
	// OriginIdleTimeout fails a fill whose origin sends nothing for this
	// long (default 30s).
	OriginIdleTimeout time.Duration
	// HeaderWait is how long a request for an image file being fetched
	// into the cache waits for the fetch's sha256 check with nothing sent
	// (default 10s): a fetch that fails meanwhile is a clean 502. Past it,
	// the response header goes out (Incus gives up on a server that sends
	// none for 30 s); the body always waits for the check.
	HeaderWait time.Duration

	// Per client (an IPv4 address, an IPv6 /64): at most
	// MaxConnsPerClient open connections (default 256) and ClientRate
	// requests a second on average in bursts of ClientBurst (defaults 100
	// and 400); a negative value: no limit.
	MaxConnsPerClient int
	ClientRate        float64
	ClientBurst       int
	// MinTransferRate (bytes/s, default 16 KiB/s; negative: none) is what
	// a client must take a response at: the time spent blocked writing to
	// it may not exceed MinRateGrace (default 10s) plus the bytes it took
	// (over HTTP/1: acknowledged) divided by the rate; a download falling
	// behind is cut, its connection reset.
	MinTransferRate float64
	MinRateGrace    time.Duration
	// SendBuffer caps each client socket's send buffer, in bytes (0: the
	// kernel's autotuning, up to tcp_wmem's maximum): what a client that
	// stops reading can keep in kernel memory until it is cut, and what
	// a download can have in flight (a throughput cap of SendBuffer per
	// round trip).
	SendBuffer int

	// TrustedProxies are the load balancers, reverse proxies or CDNs in
	// front of the proxy. From them only, the client address is taken from
	// ClientHeader — X-Forwarded-For (the default) or Forwarded (RFC 7239)
	// — or, with ProxyProtocol, from the PROXY protocol v2 header that
	// starts each connection (HTTP headers are then not read); from anyone
	// else those are ignored. Limits and access logs use that address;
	// connections from a trusted proxy itself are not counted against the
	// per-client connection cap.
	TrustedProxies []netip.Prefix
	ClientHeader   string
	ProxyProtocol  bool

	// TokensFile makes the registry private: reachable only under
	// /<token>/ for the tokens the file lists (one "TOKEN [NAME]" a line),
	// read again when it changes (checked every TokenReload, default 1s).
	TokensFile  string
	TokenReload time.Duration
	// PublicURL is the URL clients add the registry as, which the catalog
	// page shows (default: https://, or http:// with PlainHTTP, then the
	// first ACME domain or host name, then the port listened on unless it
	// is the scheme's own). Behind a load balancer, its URL.
	PublicURL string
	// RemoteName is the remote name the catalog page's commands use
	// (default "appliance").
	RemoteName string

	// Keyring, when set, makes the proxy serve the catalog only as
	// extracted from signed documents that verify with it (verified.go),
	// and image files only through the disk cache (which checks each
	// against the verified catalog's sha256 before any byte goes out): it
	// needs CacheDir and CacheSize. The registry_serial last verified of
	// each document is kept in StateDir/catalog-serials.json.
	Keyring *signing.Keyring
}

// Server is a running edgeproxy.
type Server struct {
	cfg        Config
	ln         net.Listener
	srv        *http.Server
	metricsLn  net.Listener
	metricsSrv *http.Server
	acmeSrv    *http.Server
	selfSigned *SelfSigned
	publicURL  string
	handler    *handler
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Listen == "" {
		c.Listen = ":8443"
	}
	if c.StateDir == "" {
		c.StateDir = "edgeproxy-state"
	}
	def(&c.CatalogTTL, 2*time.Second)
	def(&c.CatalogMaxAge, 60*time.Second)
	def(&c.WriteTimeout, 60*time.Second)
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.ShutdownTimeout, 30*time.Second)
	if c.MaxOriginRequests == 0 {
		c.MaxOriginRequests = 512
	}
	def(&c.HealthInterval, 5*time.Second)
	def(&c.HeaderWait, 10*time.Second)
	def(&c.OriginIdleTimeout, 30*time.Second)
	if c.MaxFills == 0 {
		c.MaxFills = 8
	}
	def(&c.MinRateGrace, 10*time.Second)
	def(&c.TokenReload, time.Second)
	if c.MaxConnsPerClient == 0 {
		c.MaxConnsPerClient = 256
	}
	if c.ClientRate == 0 {
		c.ClientRate = 100
	}
	if c.ClientBurst == 0 {
		c.ClientBurst = 400
	}
	if c.MinTransferRate == 0 {
		c.MinTransferRate = 16 << 10
	}
	if c.RemoteName == "" {
		c.RemoteName = "appliance"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if len(c.Hostnames) == 0 {
		c.Hostnames = defaultHostnames()
	}
}

// New prepares the server and starts listening (so Addr is known), but
// serves nothing until Run.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	if cfg.Origin == nil {
		return nil, errors.New("no origin")
	}
	clients, err := newClients(cfg.TrustedProxies, cfg.ClientHeader, cfg.ProxyProtocol)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	if cfg.Keyring != nil && (cfg.CacheDir == "" || cfg.CacheSize <= 0) {
		return nil, errors.New("--keyring needs the image cache (--cache-size above 0): image files go out only once checked against the verified catalog")
	}
	var disk *diskCache
	m := newMetrics(func() float64 {
		if disk == nil {
			return 0
		}
		return float64(disk.size())
	})
	if cfg.CacheDir != "" && cfg.CacheSize > 0 {
		var err error
		limits := newFillLimits(cfg.MaxFills, cfg.MaxOriginRequests)
		if disk, err = openDiskCache(cfg.CacheDir, cfg.CacheSize, limits, m); err != nil {
			return nil, err
		}
	}
	gate := newOriginGate(cfg.MaxOriginRequests, 10*time.Second, m.originInflight)
	h := &handler{
		origin: cfg.Origin, gate: gate, cache: newCatalogCache(cfg.Origin, gate, cfg.CatalogTTL, m),
		health: &healthCheck{origin: cfg.Origin, gate: gate, interval: cfg.HealthInterval},
		disk:   disk, catalogMaxAge: cfg.CatalogMaxAge, writeTimeout: cfg.WriteTimeout, headerWait: cfg.HeaderWait,
		originIdle: cfg.OriginIdleTimeout,
		minRate:    max(cfg.MinTransferRate, 0), rateGrace: cfg.MinRateGrace,
		remoteName: cfg.RemoteName, m: m, log: cfg.Logger, clients: clients, maxQueue: max(maxSendQueue(), 2*int64(cfg.SendBuffer)),
	}
	if cfg.Keyring != nil {
		serials, err := loadSerials(filepath.Join(cfg.StateDir, serialsFile))
		if err != nil {
			return nil, err
		}
		h.cache.verified = newVerifiedCatalog(cfg.Origin, gate, cfg.Keyring, serials, cfg.CatalogTTL, m, cfg.Logger)
	}
	if cfg.ClientRate > 0 {
		h.rate = newRateLimiter(cfg.ClientRate, cfg.ClientBurst)
	}
	if cfg.TokensFile != "" {
		ts, err := loadTokens(cfg.TokensFile, cfg.TokenReload)
		if err != nil {
			return nil, err
		}
		h.tokens = ts
	}
	if rr, ok := cfg.Origin.(store.RangeReader); ok {
		h.ranger = rr
	}
	s.handler = h
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadHeaderTimeout + 10*time.Second, // requests carry no body
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ConnContext:       withConn,
		// "OPTIONS *" is answered by the handler (405) like any method.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	tlsConf, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if tlsConf != nil {
		s.srv.TLSConfig = tlsConf
	}
	if s.publicURL, err = publicURL(cfg, ln.Addr()); err != nil {
		ln.Close()
		return nil, err
	}
	h.publicURL = s.publicURL
	if cfg.ProxyProtocol {
		ln = newProxyListener(ln, clients.isTrusted, cfg.ReadHeaderTimeout)
	}
	s.ln = newClientListener(ln, cfg.MaxConnsPerClient, cfg.SendBuffer, clients.isTrusted, m.connsRefused)
	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("metrics listen %s: %w", cfg.MetricsListen, err)
		}
		s.metricsLn = mln
		s.metricsSrv = &http.Server{Handler: getOnly(m.handler()), ReadHeaderTimeout: 10 * time.Second, DisableGeneralOptionsHandler: true,
			ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	}
	return s, nil
}

func (s *Server) tlsConfig() (*tls.Config, error) {
	c := s.cfg
	modes := 0
	for _, on := range []bool{c.CertFile != "" || c.KeyFile != "", c.SelfSigned, len(c.ACMEDomains) > 0, c.PlainHTTP} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return nil, errors.New("choose exactly one of: certificate files (--cert and --key), --self-signed, --acme-domain, --plain-http")
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, CipherSuites: tls12Suites}
	switch {
	case c.PlainHTTP:
		return nil, nil
	case c.SelfSigned:
		ss, err := selfSigned(c.StateDir, c.Hostnames)
		if err != nil {
			return nil, err
		}
		s.selfSigned = ss
		fc, err := newFileCert(ss.CertFile, ss.KeyFile)
		if err != nil {
			return nil, err
		}
		base.GetCertificate = fc.getCertificate
	case len(c.ACMEDomains) > 0:
		m, err := acmeManager(c.ACMEDomains, filepath.Join(c.StateDir, "acme"), c.ACMEDirectory, c.ACMEEmail, c.ACMEHTTPClient)
		if err != nil {
			return nil, err
		}
		base.GetCertificate = m.GetCertificate
		base.NextProtos = append(base.NextProtos, "acme-tls/1") // TLS-ALPN-01 challenges
		s.acmeSrv = &http.Server{Handler: m.HTTPHandler(nil), ReadHeaderTimeout: 10 * time.Second}
	default:
		if c.CertFile == "" || c.KeyFile == "" {
			return nil, errors.New("--cert and --key go together")
		}
		fc, err := newFileCert(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, err
		}
		base.GetCertificate = fc.getCertificate
	}
	return base, nil
}

// tls12Suites are the TLS 1.2 cipher suites offered: forward secrecy
// (ECDHE) and an AEAD (AES-GCM, ChaCha20-Poly1305) only. TLS 1.3 suites
// are not configurable, and all of them qualify.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// getOnly lets GET and HEAD through to h and answers anything else 405.
func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// MetricsAddr is where /metrics is served (nil when nowhere).
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}

// PublicURL is the URL clients add the registry as (Config.PublicURL).
func (s *Server) PublicURL() string { return s.publicURL }

// publicURL is cfg.PublicURL checked, or the one made of the scheme, the
// first ACME domain or host name, and the port ln listens on.
func publicURL(cfg Config, ln net.Addr) (string, error) {
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("public URL %q: want https://HOST[:PORT][/PATH]", cfg.PublicURL)
		}
		return strings.TrimSuffix(u.String(), "/"), nil
	}
	scheme, host := "https", cfg.Hostnames[0]
	if cfg.PlainHTTP {
		scheme = "http"
	}
	if len(cfg.ACMEDomains) > 0 {
		host = cfg.ACMEDomains[0]
	}
	_, port, _ := net.SplitHostPort(ln.String())
	if port == "443" && scheme == "https" || port == "80" && scheme == "http" {
		port = ""
	}
	u := url.URL{Scheme: scheme, Host: host}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	return u.String(), nil
}

// SelfSignedCert describes the self-signed certificate in use, if any.
func (s *Server) SelfSignedCert() *SelfSigned { return s.selfSigned }

// Run serves until ctx ends, then stops accepting connections and lets
// in-flight requests (downloads included) finish for up to
// ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		var err error
		if s.srv.TLSConfig != nil {
			err = s.srv.ServeTLS(s.ln, "", "")
		} else {
			err = s.srv.Serve(s.ln)
		}
		errc <- err
	}()
	if s.metricsSrv != nil {
		go s.metricsSrv.Serve(s.metricsLn)
		defer s.metricsSrv.Close()
	}
	if v := s.handler.cache.verified; v != nil {
		// Read the signed catalog now: the log says at once whether one
		// verified.
		go v.get(ctx, catalog.IndexPath)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.srv.Close()
		return fmt.Errorf("shutdown: in-flight requests did not finish within %s", s.cfg.ShutdownTimeout)
	}
	return err
}

// ACMEChallengeHandler is the HTTP-01 challenge handler to serve on port
// 80 when ACME is on (nil otherwise).
func (s *Server) ACMEChallengeHandler() http.Handler {
	if s.acmeSrv == nil {
		return nil
	}
	return s.acmeSrv.Handler
}
