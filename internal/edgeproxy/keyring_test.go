package edgeproxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
)

// signedTree is a registry folder holding signed catalog moments written
// the way a signing publisher writes them (catalog/stamp.go): product
// files stamped, index.json binding each by registry_sha256, each signed
// into its .sjson; and two image files, A and B.
type signedTree struct {
	t     testing.TB
	dir   string
	files []string          // product file paths
	img   map[string][]byte // "A", "B" → bytes
	key   map[string]string // "A", "B" → image file key
}

// testKey is the publisher's key, stranger another one.
var testKey, stranger = lazyKey("publisher"), lazyKey("stranger")

func lazyKey(name string) func(testing.TB) *signingtest.Key {
	var k *signingtest.Key
	return func(t testing.TB) *signingtest.Key {
		if k == nil {
			k = signingtest.NewKey(t, name)
		}
		return k
	}
}

func newSignedTree(t testing.TB, productFiles int) *signedTree {
	tr := &signedTree{t: t, dir: t.TempDir(), img: map[string][]byte{}, key: map[string]string{}}
	if productFiles == 1 {
		tr.files = []string{catalog.ImagesPath}
	}
	for k := 1; k <= productFiles && productFiles > 1; k++ {
		tr.files = append(tr.files, fmt.Sprintf("streams/v1/images-%d.json", k))
	}
	for i, name := range []string{"A", "B"} {
		data := bytes.Repeat([]byte{byte('a' + i)}, 64<<10)
		tr.img[name], tr.key[name] = data, "images/"+digest.Of(data)+"/rootfs.squashfs"
		tr.put(tr.key[name], data)
	}
	return tr
}

// moment is every catalog document of one signed moment, by path (.json
// and .sjson).
type moment map[string][]byte

// moment makes the documents of a moment at serial (0: unstamped),
// expiring at expires, in which nginx (in the first product file; the
// others list one product each) is image name, signed by signer.
func (tr *signedTree) moment(serial int64, expires time.Time, image string, signer *signingtest.Key) moment {
	tr.t.Helper()
	var st catalog.Stamp
	now := time.Now().UTC()
	if serial > 0 {
		st = catalog.Stamp{Updated: now.Format(catalog.UpdatedLayout), Serial: serial, Expires: expires.UTC().Format(time.RFC3339)}
	}
	m := moment{}
	entries := map[string]catalog.IndexEntry{}
	for k, path := range tr.files {
		product, alias := fmt.Sprintf("app%d:amd64", k), ""
		if k == 0 {
			product, alias = "nginx:amd64", "nginx"
		}
		doc := struct {
			ContentID string `json:"content_id"`
			DataType  string `json:"datatype"`
			Format    string `json:"format"`
			catalog.Stamp
			Products map[string]any `json:"products"`
		}{strings.TrimSuffix(filepath.Base(path), ".json"), catalog.DataTypeImages, catalog.FormatProducts, st, map[string]any{
			product: map[string]any{"aliases": alias, "arch": "amd64", "versions": map[string]any{"20261201_0000": map[string]any{
				"items": map[string]any{"root": map[string]any{"ftype": "squashfs", "path": tr.key[image], "sha256": digest.Of(tr.img[image]), "size": len(tr.img[image])}},
			}}},
		}}
		data, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			tr.t.Fatal(err)
		}
		m[path] = append(data, '\n')
		m[catalog.SignedPath(path)] = tr.sign(m[path], signer)
		e := catalog.IndexEntry{DataType: catalog.DataTypeImages, Path: path, Format: catalog.FormatProducts, Products: []string{product}}
		if serial > 0 {
			e.SHA256 = digest.Of(m[path])
		}
		entries[path] = e
	}
	ix := catalog.Layout(len(tr.files)).Index(entries)
	ix.Stamp = st
	m[catalog.IndexPath] = ix.Marshal()
	m[catalog.SignedIndexPath] = tr.sign(ix.Signed().Marshal(), signer)
	return m
}

func (tr *signedTree) sign(doc []byte, signer *signingtest.Key) []byte {
	tr.t.Helper()
	out, err := signer.Signer.Sign(doc, time.Now())
	if err != nil {
		tr.t.Fatal(err)
	}
	return out
}

// write writes the documents of m at paths (all of them when none given).
func (tr *signedTree) write(m moment, paths ...string) {
	tr.t.Helper()
	if len(paths) == 0 {
		for p := range m {
			paths = append(paths, p)
		}
	}
	for _, p := range paths {
		tr.put(p, m[p])
	}
}

func (tr *signedTree) put(key string, data []byte) {
	tr.t.Helper()
	filetest.WriteTree(tr.t, tr.dir, map[string][]byte{key: data})
}

// signedProxy starts a proxy with the publisher's keyring in front of tr,
// reading the origin again at every request, its state in state ("": a
// new folder).
func signedProxy(t *testing.T, tr *signedTree, state string) *proxy {
	t.Helper()
	return signedProxyLogged(t, tr, state, io.Discard)
}

// signedProxyLogged is signedProxy with its log written to log.
func signedProxyLogged(t *testing.T, tr *signedTree, state string, log io.Writer) *proxy {
	t.Helper()
	kr := signingtest.Keyring(t, testKey(t))
	return startProxy(t, dirOrigin(t, tr.dir), func(c *Config) {
		c.Keyring, c.CatalogTTL = kr, time.Nanosecond
		c.Logger = jsonLog(log)
		if state != "" {
			c.StateDir = state
		}
	})
}

// paths are the catalog paths clients read: index.json, each product file,
// and their signed forms.
func (tr *signedTree) paths() []string {
	var out []string
	for _, p := range append([]string{catalog.IndexPath}, tr.files...) {
		out = append(out, p, catalog.SignedPath(p))
	}
	return out
}

// served is what p serves of the catalog (paths), with the status codes
// folded in.
func (p *proxy) served(t testing.TB, tr *signedTree) string {
	t.Helper()
	var out strings.Builder
	for _, path := range tr.paths() {
		resp, body := p.do(t, "GET", "/"+path)
		fmt.Fprintf(&out, "%s %d\n%s", path, resp.StatusCode, body)
	}
	return out.String()
}

// want is what a proxy serves of moment m: index.json as signed, its
// entries naming the product files again, each product file as signed,
// and the signed documents themselves.
func (tr *signedTree) want(m moment) string {
	tr.t.Helper()
	var out strings.Builder
	for _, path := range tr.paths() {
		body := m[path]
		if path == catalog.IndexPath {
			ix, err := catalog.ParseIndex(m[path])
			if err != nil {
				tr.t.Fatal(err)
			}
			body = ix.Marshal() // the stored index of several files is compact
		}
		fmt.Fprintf(&out, "%s 200\n%s", path, body)
	}
	return out.String()
}

func layouts() map[string]int { return map[string]int{"one file": 1, "sharded": 3} }

// With a keyring the proxy serves the catalog as signed, never the stored
// .json (here rewritten to name image B), and only the image files the
// signed catalog names: A, whole or a range; B, not named, is 404.
// Without one it serves the stored .json (the control).
func TestKeyringServesOnlyTheSignedCatalog(t *testing.T) {
	for name, n := range layouts() {
		t.Run(name, func(t *testing.T) {
			tr := newSignedTree(t, n)
			good := tr.moment(2, time.Now().Add(time.Hour), "A", testKey(t))
			tr.write(good)
			forged := tr.moment(3, time.Now().Add(time.Hour), "B", testKey(t))
			for p := range forged {
				if !strings.HasSuffix(p, ".sjson") {
					tr.write(forged, p)
				}
			}
			p := signedProxy(t, tr, "")
			if got, want := p.served(t, tr), tr.want(good); got != want {
				t.Errorf("served:\n%s\nwant the signed catalog:\n%s", got, want)
			}
			if resp, body := p.do(t, "GET", "/"+tr.key["A"]); resp.StatusCode != 200 || !bytes.Equal(body, tr.img["A"]) {
				t.Errorf("GET image A: %d, %d bytes", resp.StatusCode, len(body))
			}
			if resp, body := p.do(t, "GET", "/"+tr.key["A"], "Range", "bytes=100-199"); resp.StatusCode != 206 || !bytes.Equal(body, tr.img["A"][100:200]) {
				t.Errorf("GET image A bytes 100-199: %d %q", resp.StatusCode, body)
			}
			if resp, _ := p.do(t, "GET", "/"+tr.key["B"]); resp.StatusCode != 404 {
				t.Errorf("GET image B, which the signed catalog does not name: %d, want 404", resp.StatusCode)
			}
			for _, sp := range []string{catalog.SignedIndexPath, catalog.SignedPath(tr.files[0])} {
				if resp, body := p.do(t, "GET", "/"+sp); resp.StatusCode != 200 || !bytes.Equal(body, good[sp]) {
					t.Errorf("GET %s: %d, want 200 and the signed document verified", sp, resp.StatusCode)
				}
			}
			if resp, _ := p.do(t, "GET", "/streams/v1/images-9.sjson"); resp.StatusCode != 404 {
				t.Errorf("GET a .sjson the index does not name: %d, want 404", resp.StatusCode)
			}
			plain := startProxy(t, dirOrigin(t, tr.dir), nil)
			if _, body := plain.do(t, "GET", "/"+tr.files[0]); !bytes.Equal(body, forged[tr.files[0]]) {
				t.Errorf("without a keyring, served:\n%s\nwant the stored .json:\n%s", body, forged[tr.files[0]])
			}
		})
	}
}

// A newer signed catalog is taken as soon as it verifies.
func TestKeyringTakesANewerSignedCatalog(t *testing.T) {
	for name, n := range layouts() {
		t.Run(name, func(t *testing.T) {
			tr := newSignedTree(t, n)
			tr.write(tr.moment(2, time.Now().Add(time.Hour), "A", testKey(t)))
			p := signedProxy(t, tr, "")
			p.served(t, tr)
			next := tr.moment(3, time.Now().Add(time.Hour), "B", testKey(t))
			tr.write(next)
			if got, want := p.served(t, tr), tr.want(next); got != want {
				t.Errorf("served:\n%s\nwant the newer signed catalog:\n%s", got, want)
			}
			if page := p.metrics(t); metricValue(page, "edgeproxy_catalog_serial") != 3 || strings.Contains(page, "edgeproxy_catalog_refusals_total{") {
				t.Errorf("metrics: serial %v, refusals:\n%s", metricValue(page, "edgeproxy_catalog_serial"), refusals(page))
			}
		})
	}
}

// refusals are the refusal counters of a /metrics page.
func refusals(page string) string {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, "edgeproxy_catalog_refusals_total{") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Each way a bucket writer without the key can change the signed catalog
// is refused, counted under its reason, and the last verified catalog is
// still served (image A, serial 2), in both layouts.
func TestKeyringRefusesEachTamper(t *testing.T) {
	hour := time.Hour
	cases := []struct {
		reason string
		tamper func(t *testing.T, tr *signedTree)
	}{
		{"bad-signature", func(t *testing.T, tr *signedTree) {
			// The signed text of a product file edited to name B's digest.
			next := tr.moment(3, time.Now().Add(hour), "A", testKey(t))
			sp := catalog.SignedPath(tr.files[0])
			next[sp] = bytes.Replace(next[sp], []byte(digest.Of(tr.img["A"])), []byte(digest.Of(tr.img["B"])), 1)
			tr.write(next)
		}},
		{"unknown-key", func(t *testing.T, tr *signedTree) {
			tr.write(tr.moment(3, time.Now().Add(hour), "B", stranger(t)))
		}},
		{"not-signed", func(t *testing.T, tr *signedTree) {
			next := tr.moment(3, time.Now().Add(hour), "B", testKey(t))
			next[catalog.SignedIndexPath] = next[catalog.IndexPath]
			tr.write(next)
		}},
		{"malformed", func(t *testing.T, tr *signedTree) {
			// Clear-signed, with text after the signature block.
			next := tr.moment(3, time.Now().Add(hour), "B", testKey(t))
			next[catalog.SignedIndexPath] = append(next[catalog.SignedIndexPath], "\n{\"more\": true}\n"...)
			tr.write(next)
		}},
		{"unstamped", func(t *testing.T, tr *signedTree) {
			tr.write(tr.moment(0, time.Time{}, "B", testKey(t)))
		}},
		{"expired", func(t *testing.T, tr *signedTree) {
			tr.write(tr.moment(3, time.Now().Add(-time.Minute), "B", testKey(t)))
		}},
		{"rollback", func(t *testing.T, tr *signedTree) {
			tr.write(tr.moment(1, time.Now().Add(hour), "B", testKey(t)))
		}},
		{"mix", func(t *testing.T, tr *signedTree) {
			// Both newer than the catalog served: the index of one, the
			// product files of the other.
			m3, m4 := tr.moment(3, time.Now().Add(hour), "B", testKey(t)), tr.moment(4, time.Now().Add(hour), "A", testKey(t))
			for p := range m3 {
				if strings.HasPrefix(p, "streams/v1/images") {
					tr.write(m3, p)
				}
			}
			tr.write(m4, catalog.IndexPath, catalog.SignedIndexPath)
		}},
		{"missing", func(t *testing.T, tr *signedTree) {
			next := tr.moment(3, time.Now().Add(hour), "B", testKey(t))
			tr.write(next)
			os.Remove(filepath.Join(tr.dir, filepath.FromSlash(catalog.SignedPath(tr.files[len(tr.files)-1]))))
		}},
	}
	for name, n := range layouts() {
		for _, c := range cases {
			t.Run(name+"/"+c.reason, func(t *testing.T) {
				tr := newSignedTree(t, n)
				good := tr.moment(2, time.Now().Add(hour), "A", testKey(t))
				tr.write(good)
				p := signedProxy(t, tr, "")
				if got, want := p.served(t, tr), tr.want(good); got != want {
					t.Fatalf("before: served\n%s\nwant\n%s", got, want)
				}
				c.tamper(t, tr)
				series := `edgeproxy_catalog_refusals_total{reason="` + c.reason + `"}`
				if !eventually(time.Minute, func() bool { p.served(t, tr); return metricValue(p.metrics(t), series) >= 1 }) {
					t.Fatalf("no refusal counted as %s:\n%s", c.reason, refusals(p.metrics(t)))
				}
				if got, want := p.served(t, tr), tr.want(good); got != want {
					t.Errorf("after: served\n%s\nwant the last verified catalog\n%s", got, want)
				}
				page := p.metrics(t)
				if got := refusals(page); got != series+" 1" {
					t.Errorf("refusals counted:\n%s\nwant %s once", got, series)
				}
				if resp, _ := p.do(t, "GET", "/"+tr.key["B"]); resp.StatusCode != 404 {
					t.Errorf("image B: %d, want 404", resp.StatusCode)
				}
			})
		}
	}
}

// Before any signed catalog verifies, catalog paths answer 503 (never the
// stored .json) and image files 404; the first one that verifies is served.
func TestKeyringServesNothingUnverified(t *testing.T) {
	tr := newSignedTree(t, 1)
	tr.write(tr.moment(2, time.Now().Add(time.Hour), "B", stranger(t)))
	var log syncBuffer
	p := signedProxyLogged(t, tr, "", &log)
	for _, path := range []string{catalog.IndexPath, catalog.ImagesPath} {
		if resp, body := p.do(t, "GET", "/"+path); resp.StatusCode != 503 {
			t.Errorf("GET %s with no verified catalog: %d %s, want 503", path, resp.StatusCode, body)
		}
	}
	if got := log.String(); strings.Count(got, `"msg":"signed catalog refused","reason":"unknown-key"`) != 1 || !strings.Contains(got, "no verified catalog: catalog paths answer 503") {
		t.Errorf("the log does not say once that nothing verified and catalog paths answer 503:\n%s", got)
	}
	if resp, _ := p.do(t, "GET", "/"+tr.key["B"]); resp.StatusCode != 404 {
		t.Errorf("image B with no verified catalog: %d, want 404", resp.StatusCode)
	}
	good := tr.moment(2, time.Now().Add(time.Hour), "A", testKey(t))
	tr.write(good)
	if got, want := p.served(t, tr), tr.want(good); got != want {
		t.Errorf("served\n%s\nwant\n%s", got, want)
	}
}

// The serial last verified survives a restart: a proxy started again on
// the same state folder refuses an older signed catalog (and, having
// verified nothing since, answers 503).
func TestKeyringRemembersSerialsAcrossRestarts(t *testing.T) {
	for name, n := range layouts() {
		t.Run(name, func(t *testing.T) {
			tr := newSignedTree(t, n)
			state := t.TempDir()
			newer := tr.moment(3, time.Now().Add(time.Hour), "A", testKey(t))
			older := tr.moment(2, time.Now().Add(time.Hour), "B", testKey(t))
			tr.write(newer)
			p := signedProxy(t, tr, state)
			if got, want := p.served(t, tr), tr.want(newer); got != want {
				t.Fatalf("served\n%s\nwant\n%s", got, want)
			}
			p.stop(t)
			var saved map[string]int64
			data, _ := os.ReadFile(filepath.Join(state, serialsFile))
			if err := json.Unmarshal(data, &saved); err != nil || saved[catalog.SignedIndexPath] != 3 || saved[catalog.SignedPath(tr.files[0])] != 3 {
				t.Errorf("%s: %s (%v), want serial 3 for each document", serialsFile, data, err)
			}
			tr.write(older)
			p = signedProxy(t, tr, state)
			if resp, _ := p.do(t, "GET", "/"+catalog.IndexPath); resp.StatusCode != 503 {
				t.Errorf("after a restart, an older catalog: %d, want 503", resp.StatusCode)
			}
			if got := refusals(p.metrics(t)); got != `edgeproxy_catalog_refusals_total{reason="rollback"} 1` {
				t.Errorf("refusals:\n%s", got)
			}
			tr.write(newer)
			if got, want := p.served(t, tr), tr.want(newer); got != want {
				t.Errorf("served\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// A verified catalog that expires is served no longer (a frozen origin
// shows as 503, not as a catalog that never changes).
func TestKeyringStopsServingAnExpiredCatalog(t *testing.T) {
	tr := newSignedTree(t, 1)
	expires := time.Now().Add(3 * time.Second).Truncate(time.Second)
	tr.write(tr.moment(2, expires, "A", testKey(t)))
	p := signedProxy(t, tr, "")
	if resp, _ := p.do(t, "GET", "/"+catalog.ImagesPath); resp.StatusCode != 200 && time.Now().Before(expires) {
		t.Fatalf("GET images.json before it expires: %d", resp.StatusCode)
	}
	expired := `edgeproxy_catalog_refusals_total{reason="expired"} 1`
	if !eventually(time.Minute, func() bool {
		resp, _ := p.do(t, "GET", "/"+catalog.ImagesPath)
		return resp.StatusCode == 503 && refusals(p.metrics(t)) == expired
	}) {
		t.Fatalf("an expired catalog is still served, or its refusal not counted:\n%s", refusals(p.metrics(t)))
	}
}

// Image files go out only checked against the verified catalog: image A's
// bytes swapped at the origin are not served, whole or a range.
func TestKeyringImageFilesChecked(t *testing.T) {
	tr := newSignedTree(t, 1)
	tr.write(tr.moment(2, time.Now().Add(time.Hour), "A", testKey(t)))
	tr.put(tr.key["A"], tr.img["B"])
	p := signedProxy(t, tr, "")
	for _, hdr := range [][]string{nil, {"Range", "bytes=0-99"}} {
		if resp, body := p.do(t, "GET", "/"+tr.key["A"], hdr...); resp.StatusCode < 500 || bytes.Contains(body, tr.img["B"][:100]) {
			t.Errorf("GET swapped image A %v: %d, %d bytes", hdr, resp.StatusCode, len(body))
		}
	}
}

// A keyring needs the image cache: image files are never streamed
// unchecked.
func TestKeyringNeedsTheImageCache(t *testing.T) {
	tr := newSignedTree(t, 1)
	_, err := New(Config{Origin: dirOrigin(t, tr.dir), Listen: "127.0.0.1:0", PlainHTTP: true, StateDir: t.TempDir(),
		Keyring: signingtest.Keyring(t, testKey(t))})
	if err == nil || !strings.Contains(err.Error(), "image cache") {
		t.Errorf("New with a keyring and no image cache: %v", err)
	}
}
