package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/incus-appliance/registry/internal/miniotest"
)

// candidate is one server under test and how to start it.
type candidate struct {
	name, about string
	launch      func(sdir string, port int) (*proc, error)
}

// candidates are edgeproxy (first: the targets are its ratios), optionally
// edgeproxy reading a plain HTTP origin, nginx with its image cache warm,
// nginx streaming image files from MinIO, and Caddy.
func candidates(o options, f flags, srv *miniotest.Server, nginx, caddy, cert, key string) []candidate {
	base := func(sdir string, port int) setup {
		return setup{Dir: sdir, Cert: cert, Key: key, MinIO: srv.Endpoint[len("http://"):], Bucket: bucket, User: nginxUser(),
			Port: port, CatalogTTL: o.catalogTTL, NginxBufNum: o.nginxBufNum, NginxBufSize: o.nginxBufSz}
	}
	// Both edgeproxies: the image disk cache on, no per-client limits (all
	// load comes from 127.0.0.1; nginx has none either), no metrics port.
	edgeArgs := func(sdir string, port int) []string {
		return []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--cert", cert, "--key", key,
			"--state-dir", filepath.Join(sdir, "state"), "--catalog-ttl", o.catalogTTL.String(), "--quiet",
			"--cache-dir", filepath.Join(sdir, "image-cache"), fmt.Sprintf("--cache-size=%d", 2*o.size+1<<30),
			"--metrics-listen=", "--client-rate=-1", "--max-conns-per-client=-1"}
	}
	cands := []candidate{{
		name:  "edgeproxy",
		about: fmt.Sprintf("signed S3 reads; catalog JSON in memory for %s (gzip computed once); image files from its disk cache (warm)", o.catalogTTL),
		launch: func(sdir string, port int) (*proc, error) {
			env := append(os.Environ(), srv.Env()...)
			return start("edgeproxy", sdir, port, env, f.edgeBin, append([]string{
				"--bucket", "s3://" + bucket, "--endpoint-url", srv.Endpoint, "--region", miniotest.Region}, edgeArgs(sdir, port)...)...)
		},
	}}
	if f.edgeHTTP {
		cands = append(cands, candidate{
			name:  "edgeproxy-http",
			about: "anonymous reads through --origin http://MINIO/BUCKET (plain HTTP origin: no S3 SDK, Go's default transport); otherwise as edgeproxy",
			launch: func(sdir string, port int) (*proc, error) {
				return start("edgeproxy-http", sdir, port, os.Environ(), f.edgeBin,
					append([]string{"--origin", srv.Endpoint + "/" + bucket}, edgeArgs(sdir, port)...)...)
			},
		})
	}
	if nginx != "" {
		for _, imageCache := range []bool{true, false} {
			c := candidate{
				name: "nginx",
				about: fmt.Sprintf("anonymous reads; proxy_cache for JSON (%s, lock, stale while updating; gzip per response) and for image files (warm)",
					o.catalogTTL),
			}
			if !imageCache {
				c.name = "nginx-stream"
				c.about = fmt.Sprintf("as nginx, but image files streamed from MinIO on every download (proxy_buffers %d %s), not cached",
					o.nginxBufNum, o.nginxBufSz)
			}
			c.launch = func(sdir string, port int) (*proc, error) {
				for _, d := range []string{"tmp", "cache", "images-cache"} {
					if err := os.MkdirAll(filepath.Join(sdir, d), 0o755); err != nil {
						return nil, err
					}
				}
				conf := filepath.Join(sdir, "nginx.conf")
				s := base(sdir, port)
				s.ImageCache = imageCache
				if err := writeTemplate(nginxConf, conf, s); err != nil {
					return nil, err
				}
				return start(c.name, sdir, port, os.Environ(), nginx, "-p", sdir, "-c", conf, "-g", "daemon off;")
			}
			cands = append(cands, c)
		}
	}
	if caddy != "" {
		cands = append(cands, candidate{
			name:  "caddy",
			about: "anonymous reads; no cache (none in the Debian package): every request goes to MinIO (JSON gzip per response)",
			launch: func(sdir string, port int) (*proc, error) {
				conf := filepath.Join(sdir, "Caddyfile")
				if err := writeTemplate(caddyfile, conf, base(sdir, port)); err != nil {
					return nil, err
				}
				env := append(os.Environ(), "HOME="+sdir, "XDG_DATA_HOME="+filepath.Join(sdir, "data"),
					"XDG_CONFIG_HOME="+filepath.Join(sdir, "config"))
				return start("caddy", sdir, port, env, caddy, "run", "--config", conf, "--adapter", "caddyfile")
			},
		})
	}
	return cands
}
