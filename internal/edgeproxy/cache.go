package edgeproxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
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
	ttl    time.Duration
	group  singleflight.Group
	m      *metrics

	mu      sync.Mutex
	entries map[string]*catalogEntry
}

func newCatalogCache(o Origin, ttl time.Duration, m *metrics) *catalogCache {
	return &catalogCache{origin: o, ttl: ttl, m: m, entries: map[string]*catalogEntry{}}
}

// get returns the cached entry for key, refreshing it when older than ttl.
func (c *catalogCache) get(ctx context.Context, key string) (*catalogEntry, error) {
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

func (c *catalogCache) fetch(ctx context.Context, key string) (*catalogEntry, error) {
	start := time.Now()
	rc, info, err := c.origin.Get(ctx, key)
	c.m.originLatency.WithLabelValues("catalog").Observe(time.Since(start).Seconds())
	e := &catalogEntry{fetched: time.Now()}
	switch {
	case isNotFound(err):
		e.missing = true
	case err != nil:
		return nil, err
	default:
		defer rc.Close()
		e.data, err = io.ReadAll(io.LimitReader(rc, maxCatalogBytes+1))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", key, err)
		}
		if len(e.data) > maxCatalogBytes {
			return nil, errors.New(key + " is larger than the catalog limit")
		}
		e.etag, e.modTime = etagOf(info), info.ModTime
	}
	c.mu.Lock()
	c.entries[key] = e
	c.mu.Unlock()
	return e, nil
}
