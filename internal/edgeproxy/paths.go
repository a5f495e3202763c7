package edgeproxy

import (
	"net/http"
	"strings"

	"github.com/incus-appliance/registry/internal/key"
)

// class is what a request asks for; it decides caching and metrics.
type class string

const (
	classCatalog class = "catalog" // streams/v1/*.json
	classImage   class = "image"   // images/... (content-addressed, immutable)
	classOther   class = "other"   // health, metrics, refused requests
)

// maxURILen bounds the request URI; registry keys are far shorter.
const maxURILen = 1024

// route checks a request's path before any origin call and returns the
// store key and class it names, or the status to refuse it with:
// 414 for an overlong URI; 400 for anything a registry key cannot hold —
// percent-encoding of any kind (encoded slashes, dots, NUL...), a
// backslash, control bytes, "." or ".." segments, empty segments,
// dot-files; 404 for a valid path outside streams/v1/*.json and images/
// (any key under images/ is served, whatever the tree's layout).
func route(r *http.Request) (objKey string, c class, status int) {
	raw := r.RequestURI
	if raw == "" || raw == "*" {
		raw = r.URL.EscapedPath()
	}
	if len(raw) > maxURILen {
		return "", classOther, http.StatusRequestURITooLong
	}
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i] // a query string is ignored, never forwarded
	}
	if !strings.HasPrefix(raw, "/") || strings.ContainsAny(raw, "%\\") {
		return "", classOther, http.StatusBadRequest
	}
	for _, b := range []byte(raw) {
		if b < 0x21 || b >= 0x7f {
			return "", classOther, http.StatusBadRequest
		}
	}
	k := raw[1:]
	if err := key.Check(k); err != nil {
		return "", classOther, http.StatusBadRequest
	}
	switch {
	case strings.HasPrefix(k, "images/"):
		// Any layout: ours (images/<fp>/rootfs.squashfs), incus-simplestreams'
		// (images/<fp>.incus.tar.xz), images.linuxcontainers.org's
		// (images/debian/bookworm/amd64/default/20261129_05:24/rootfs.squashfs).
		return k, classImage, 0
	case strings.HasPrefix(k, "streams/v1/") && strings.HasSuffix(k, ".json") && strings.Count(k, "/") == 2:
		return k, classCatalog, 0
	}
	return "", classOther, http.StatusNotFound
}
