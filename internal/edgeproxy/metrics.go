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
}

func newMetrics(cacheBytes func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeproxy_requests_total", Help: "Requests served, by class (catalog, image, other) and status code.",
		}, []string{"class", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeproxy_response_bytes_total", Help: "Response body bytes sent, by class.",
		}, []string{"class"}),
		originLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edgeproxy_origin_seconds", Help: "Time to first byte of origin reads, by class.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"class"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeproxy_catalog_cache_total", Help: "Catalog cache lookups: hit, miss (one origin read), collapsed (waited for another request's read).",
		}, []string{"result"}),
		originInflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeproxy_origin_inflight", Help: "Origin reads in progress (image downloads hold one until done).",
		}),
	}
	m.diskCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgeproxy_image_cache_total", Help: "Image file requests served from the disk cache: hit, or miss (fetched from the origin first, once per file).",
	}, []string{"result"})
	m.fills = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "edgeproxy_image_fills", Help: "Image files being fetched into the disk cache.",
	})
	m.fillsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgeproxy_image_fills_refused_total",
		Help: "Fetches into the disk cache not started: bad (the file failed its last fetch, refused for a back-off period), busy (every fill in use), client (the client's share in use), full (no room beside the fills under way).",
	}, []string{"reason"})
	m.fillFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgeproxy_image_fill_failures_total", Help: "Fetches into the disk cache that failed (origin error, stall, or bytes not matching the catalog): the file is then refused for a back-off period.",
	})
	m.tokenRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgeproxy_token_requests_total", Help: "Requests that came with a valid access token, by the token's name.",
	}, []string{"token"})
	m.connsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgeproxy_connections_refused_total", Help: "Connections closed at once: their client address already held the maximum.",
	})
	m.inflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "edgeproxy_requests_inflight", Help: "Requests being answered (downloads included).",
	})
	m.reg.MustRegister(m.diskCache, m.fills, m.fillsRefused, m.fillFailures, m.tokenRequests, m.connsRefused, m.inflight, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "edgeproxy_image_cache_bytes", Help: "Bytes held by the image disk cache.",
	}, cacheBytes))
	m.reg.MustRegister(m.requests, m.bytes, m.originLatency, m.cache, m.originInflight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
