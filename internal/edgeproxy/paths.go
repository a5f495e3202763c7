package edgeproxy

import (
	"net/http"
	"strings"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/key"
)

// class is what a request asks for; it decides caching and metrics.
type class string

const (
	classCatalog class = "catalog" // streams/v1/*.json and *.sjson (their signed forms)
	classImage   class = "image"   // images/... (content-addressed, immutable)
	classPage    class = "page"    // the catalog page
	classOther   class = "other"   // health, refused requests
)

// maxURILen bounds the request URI; registry keys are far shorter.
const maxURILen = 1024

// requestPath is the request's raw path (percent-encoding kept, query
// dropped), or 414 for an overlong URI.
func requestPath(r *http.Request) (string, int) {
	raw := r.RequestURI
	if raw == "" || raw == "*" {
		raw = r.URL.EscapedPath()
	}
	if len(raw) > maxURILen {
		return "", http.StatusRequestURITooLong
	}
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i] // a query string is ignored, never forwarded
	}
	return raw, 0
}

// checkPath refuses, with 400, a raw request path no registry key can be
// — percent-encoding of any kind (encoded slashes, dots, NUL...), a
// backslash, control bytes, "." or ".." segments, empty segments,
// dot-files — before anything else looks at it: with tokens, a path is
// refused the same way whatever its first segment, so the answer never
// tells a valid token from a wrong one. "/" and one segment followed by
// "/" (a token's page) pass.
func checkPath(raw string) int {
	if !strings.HasPrefix(raw, "/") || strings.ContainsAny(raw, "%\\") {
		return http.StatusBadRequest
	}
	for _, b := range []byte(raw) {
		if b < 0x21 || b >= 0x7f {
			return http.StatusBadRequest
		}
	}
	k := raw[1:]
	if k == "" || strings.Count(k, "/") == 1 && strings.HasSuffix(k, "/") {
		k = strings.TrimSuffix(k, "/")
		if k == "" {
			return 0
		}
	}
	if key.Check(k) != nil {
		return http.StatusBadRequest
	}
	return 0
}

// route checks a raw request path before any origin call and returns the
// store key and class it names, or the status to refuse it with: 400 for
// anything a registry key cannot hold (checkPath), 404 for a valid path
// outside streams/v1/*.json and images/.
func route(raw string) (objKey string, c class, status int) {
	if status := checkPath(raw); status != 0 || strings.HasSuffix(raw, "/") {
		return "", classOther, http.StatusBadRequest
	}
	k := raw[1:]
	switch {
	case strings.HasPrefix(k, catalog.ImagesDir):
		// Any layout: ours (images/<fp>/rootfs.squashfs), incus-simplestreams'
		// (images/<fp>.incus.tar.xz), images.linuxcontainers.org's
		// (images/debian/bookworm/amd64/default/20261129_05:24/rootfs.squashfs).
		return k, classImage, 0
	case strings.HasPrefix(k, "streams/v1/") && (strings.HasSuffix(k, ".json") || strings.HasSuffix(k, ".sjson")) && strings.Count(k, "/") == 2:
		return k, classCatalog, 0
	}
	return "", classOther, http.StatusNotFound
}

// unsignedPath is the catalog document a catalog path is or signs: X.json
// for X.sjson (catalog.SignedPath's inverse), path itself otherwise.
func unsignedPath(path string) string {
	if p, ok := strings.CutSuffix(path, ".sjson"); ok {
		return p + ".json"
	}
	return path
}
