package edgeproxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
)

// maxCatalogBytes bounds a catalog file held in memory.
const maxCatalogBytes = 64 << 20

// catalogEntry is one cached catalog file (or a cached "not found").
type catalogEntry struct {
	data    []byte
	etag    string
	modTime time.Time
	missing bool
	fetched time.Time

	gzOnce sync.Once
	gz     []byte

	parseOnce sync.Once
	named     map[string]bool     // index.json: the catalog paths it names
	files     map[string]fileInfo // a catalog file: image file path → sha256 and size
}

// fileInfo is what a catalog says about one image file.
type fileInfo struct {
	sha256 string
	size   int64
}

// parse reads, once, what the proxy needs from a catalog file: the paths
// an index names, and the files a product catalog lists. Decoding is
// lenient (a catalog some other tool wrote still works); what does not
// decode names nothing.
func (e *catalogEntry) parse() {
	e.parseOnce.Do(func() {
		e.named, e.files = map[string]bool{}, map[string]fileInfo{}
		var doc struct {
			Index map[string]struct {
				Path string `json:"path"`
			} `json:"index"`
			Products map[string]struct {
				Versions map[string]struct {
					Items map[string]struct {
						Path   string `json:"path"`
						SHA256 string `json:"sha256"`
						Size   int64  `json:"size"`
					} `json:"items"`
				} `json:"versions"`
			} `json:"products"`
		}
		if e.missing || json.Unmarshal(e.data, &doc) != nil {
			return
		}
		for _, ent := range doc.Index {
			e.named[strings.TrimPrefix(ent.Path, "/")] = true
		}
		for _, p := range doc.Products {
			for _, v := range p.Versions {
				for _, it := range v.Items {
					if digest.IsSHA256(it.SHA256) && it.Size >= 0 {
						e.files[strings.TrimPrefix(it.Path, "/")] = fileInfo{it.SHA256, it.Size}
					}
				}
			}
		}
	})
}

// names reports whether this index names a catalog path.
func (e *catalogEntry) names(key string) bool {
	e.parse()
	return e.named[key]
}

// file returns what this catalog says about an image file.
func (e *catalogEntry) file(key string) (fileInfo, bool) {
	e.parse()
	f, ok := e.files[key]
	return f, ok
}

// gzipped returns the gzip-compressed data, computed once.
func (e *catalogEntry) gzipped() []byte {
	e.gzOnce.Do(func() {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
		zw.Write(e.data)
		zw.Close()
		e.gz = b.Bytes()
	})
	return e.gz
}

// gzipETag derives the compressed variant's ETag from the origin's.
func (e *catalogEntry) gzipETag() string {
	if e.etag == "" {
		return ""
	}
	return strings.TrimSuffix(e.etag, `"`) + `-gzip"`
}

// catalogCache keeps the two catalog files in memory for a short TTL and
// collapses concurrent misses into one origin read. When a refresh fails
// it keeps serving the previous copy (as Incus itself does).
type catalogCache struct {
	origin Origin
	gate   *originGate
	ttl    time.Duration
	group  singleflight.Group
	m      *metrics
	// verified, with a keyring, is the only source of catalog files.
	verified *verifiedCatalog

	mu      sync.Mutex
	entries map[string]*catalogEntry
}

func newCatalogCache(o Origin, gate *originGate, ttl time.Duration, m *metrics) *catalogCache {
	return &catalogCache{origin: o, gate: gate, ttl: ttl, m: m, entries: map[string]*catalogEntry{}}
}

// get returns the cached entry for key, refreshing it when older than ttl.
func (c *catalogCache) get(ctx context.Context, key string) (*catalogEntry, error) {
	if c.verified != nil {
		return c.verified.get(ctx, key)
	}
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e != nil && time.Since(e.fetched) < c.ttl {
		c.m.cache.WithLabelValues("hit").Inc()
		return e, nil
	}
	leader := false
	v, err, _ := c.group.Do(key, func() (any, error) {
		leader = true
		// Detached from the first caller: a client hanging up must not
		// fail the others waiting for the same read.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return c.fetch(fctx, key)
	})
	if leader {
		c.m.cache.WithLabelValues("miss").Inc()
	} else {
		c.m.cache.WithLabelValues("collapsed").Inc()
	}
	if err != nil {
		if e != nil && !e.missing {
			return e, nil // stale beats nothing
		}
		return nil, err
	}
	return v.(*catalogEntry), nil
}

// readCatalogFile reads the catalog file key from the origin, within the
// origin gate and timed as a catalog read: at most maxCatalogBytes+1
// bytes (more, and the caller refuses the file), the object's info, and
// when the origin answered. A missing file is the origin's error.
func readCatalogFile(ctx context.Context, o Origin, gate *originGate, m *metrics, key string) (data []byte, info store.ObjectInfo, answered time.Time, err error) {
	release, err := gate.acquire(ctx)
	if err != nil {
		return nil, info, answered, err
	}
	defer release()
	start := time.Now()
	rc, info, err := o.Get(ctx, key)
	answered = time.Now()
	m.originLatency.WithLabelValues("catalog").Observe(answered.Sub(start).Seconds())
	if err != nil {
		return nil, info, answered, err
	}
	defer rc.Close()
	if data, err = io.ReadAll(io.LimitReader(rc, maxCatalogBytes+1)); err != nil {
		return nil, info, answered, fmt.Errorf("read %s: %w", key, err)
	}
	return data, info, answered, nil
}

// fetch reads a catalog file from the origin: the one place catalog
// bytes enter the proxy, where a check of what may be served (a verified
// signature, say) belongs.
func (c *catalogCache) fetch(ctx context.Context, key string) (*catalogEntry, error) {
	data, info, answered, err := readCatalogFile(ctx, c.origin, c.gate, c.m, key)
	e := &catalogEntry{fetched: answered}
	switch {
	case isNotFound(err):
		e.missing = true
	case err != nil:
		return nil, err
	case len(data) > maxCatalogBytes:
		return nil, errors.New(key + " is larger than the catalog limit")
	default:
		e.data, e.etag, e.modTime = data, etagOf(info), info.ModTime
	}
	c.mu.Lock()
	c.entries[key] = e
	c.mu.Unlock()
	return e, nil
}
