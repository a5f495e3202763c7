package edgeproxy

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the proxy's Prometheus series, on a registry of their own.
type metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec   // class, code
	bytes          *prometheus.CounterVec   // class
	originLatency  *prometheus.HistogramVec // class
	cache          *prometheus.CounterVec   // result: hit, miss, collapsed
	originInflight prometheus.Gauge
	diskCache      *prometheus.CounterVec // result: hit, miss
	fills          prometheus.Gauge
	fillsRefused   *prometheus.CounterVec // reason: bad, busy, client, full
	fillFailures   prometheus.Counter
	tokenRequests  *prometheus.CounterVec // token name
	connsRefused   prometheus.Counter
	inflight       prometheus.Gauge

	catalogRefusals *prometheus.CounterVec // reason (verified.go)
	catalogSerial   prometheus.Gauge
	catalogExpires  prometheus.Gauge
}

func newMetrics(cacheBytes func() float64) *metrics {
	reg := prometheus.NewRegistry()
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	counters := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		reg.MustRegister(c)
		return c
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	m := &metrics{
		reg: reg,
		requests: counters("edgeproxy_requests_total",
			"Requests served, by class (catalog, image, page, other) and status code.", "class", "code"),
		bytes: counters("edgeproxy_response_bytes_total", "Response body bytes sent, by class.", "class"),
		originLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edgeproxy_origin_seconds", Help: "Time to first byte of origin reads, by class.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"class"}),
		cache: counters("edgeproxy_catalog_cache_total",
			"Catalog cache lookups: hit, miss (one origin read), collapsed (waited for another request's read).", "result"),
		originInflight: gauge("edgeproxy_origin_inflight", "Origin reads in progress (image downloads hold one until done)."),
		diskCache: counters("edgeproxy_image_cache_total",
			"Image file requests served from the disk cache: hit, or miss (fetched from the origin first, once per file).", "result"),
		fills: gauge("edgeproxy_image_fills", "Image files being fetched into the disk cache."),
		fillsRefused: counters("edgeproxy_image_fills_refused_total",
			"Fetches into the disk cache not started: bad (the file failed its last fetch, refused for a back-off period), busy (every fill in use), client (the client's share in use), full (no room beside the fills under way).",
			"reason"),
		fillFailures: counter("edgeproxy_image_fill_failures_total",
			"Fetches into the disk cache that failed (origin error, stall, or bytes not matching the catalog): the file is then refused for a back-off period."),
		tokenRequests: counters("edgeproxy_token_requests_total", "Requests that came with a valid access token, by the token's name.", "token"),
		connsRefused:  counter("edgeproxy_connections_refused_total", "Connections closed at once: their client already held the maximum."),
		inflight:      gauge("edgeproxy_requests_inflight", "Requests being answered (downloads included)."),
		catalogRefusals: counters("edgeproxy_catalog_refusals_total",
			"With --keyring: signed catalogs refused (the last verified one still served), by reason: missing, not-signed, malformed, unknown-key, bad-signature, unstamped, expired, rollback (an older registry_serial than the last verified), mix (a product file the index does not bind).",
			"reason"),
		catalogSerial:  gauge("edgeproxy_catalog_serial", "With --keyring: the registry_serial of the verified index.sjson served (0: none yet)."),
		catalogExpires: gauge("edgeproxy_catalog_expires_timestamp_seconds", "With --keyring: when the verified catalog served expires (Unix time; 0: none yet)."),
	}
	reg.MustRegister(m.originLatency, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "edgeproxy_image_cache_bytes", Help: "Bytes held by the image disk cache, or reserved by the files being fetched into it.",
	}, cacheBytes), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
