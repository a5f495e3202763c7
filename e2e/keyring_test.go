package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
)

// The tamper matrix: a registry published with a signing key, edgeproxy
// --keyring in front of it and the real incus client behind, and a bucket
// writer without the key who, each in turn: edits images.json (and the
// text of its .sjson) so that nginx is another image; swaps a root file's
// bytes; replays an older signed catalog; writes a .sjson signed by a key
// of their own; deletes a .sjson; writes a catalog the publisher signed
// that has expired; writes an index of one signed moment with product
// files of another. After each, a fresh client still resolves nginx to the
// last signed image, and edgeproxy counted the refusal under its reason;
// an edgeproxy without --keyring in front of the same folder shows the
// edit (the control). Then the publisher's next release is served. With
// one catalog file and with four.
func TestTamperMatrixThroughVerifyingEdgeproxy(t *testing.T) {
	key, stranger := signingtest.NewKey(t, "ci"), signingtest.NewKey(t, "stranger")
	env := []string{"PUBLISH_SIGNING_KEY=" + signingtest.WriteSecret(t, key)}
	keyring := signingtest.WriteKeyring(t, key)
	for _, shards := range []string{"1", "4"} {
		t.Run(shards+" files", func(t *testing.T) {
			v := versions(t, "nginx", 4)
			reg := filepath.Join(t.TempDir(), "registry")
			pub := func(dir string, s sample, flags ...string) {
				t.Helper()
				publishSample(t, env, s, append([]string{"--bucket", dir, "--no-delta", "--catalog-shards", shards}, flags...)...)
			}
			pub(reg, v[0])
			older := readStreams(t, reg)
			pub(reg, v[1])
			good := readStreams(t, reg)
			// Moments the publisher signed elsewhere, which the bucket
			// writer replays: two newer ones, and one that expires at once.
			elsewhere := filetest.Copy(t, reg)
			pub(elsewhere, v[2])
			m3 := readStreams(t, elsewhere)
			pub(elsewhere, v[3])
			m4 := readStreams(t, elsewhere)
			short := filetest.Copy(t, reg)
			pub(short, v[2], "--signature-validity", "1s")
			expired := readStreams(t, short)

			verifying := launchEdgeproxy(t, nil, nil, t.TempDir(), "--bucket", reg, "--keyring", keyring, "--catalog-ttl", "50ms", "--quiet")
			plain := launchEdgeproxy(t, nil, nil, t.TempDir(), "--bucket", reg, "--catalog-ttl", "50ms", "--quiet")
			resolves := func(t *testing.T, run edgeRun, want sample) {
				t.Helper()
				// A fresh client each time: nothing cached on its side.
				remoteClient(t, "incus", "appliance", run.url, run.cert).wantInfo(t, "appliance:nginx", want.fp)
			}
			resolves(t, verifying, v[1])
			remoteClient(t, "incus", "appliance", verifying.url, verifying.cert).wantExport(t, "appliance:nginx", v[1].fp)
			nginxFile := productFileOf(t, good, "nginx:amd64")

			cases := []struct {
				name, reason string
				tamper       func(t *testing.T)
				control      *sample // what the edgeproxy without a keyring resolves nginx to
			}{
				{"images.json edited: nginx is another image", "bad-signature", func(t *testing.T) {
					edited := withoutVersion(t, good[nginxFile], v[1].fp)
					signed := bytes.Replace(good[catalog.SignedPath(nginxFile)], bytes.TrimSpace(good[nginxFile]), bytes.TrimSpace(edited), 1)
					if bytes.Equal(signed, good[catalog.SignedPath(nginxFile)]) {
						t.Fatal("the signed text was not edited")
					}
					writeStreams(t, reg, map[string][]byte{nginxFile: edited, catalog.SignedPath(nginxFile): signed})
				}, &v[0]},
				{"a .sjson signed by an unknown key", "unknown-key", func(t *testing.T) {
					edited := withoutVersion(t, good[nginxFile], v[1].fp)
					signed, err := stranger.Signer.Sign(edited, time.Now())
					if err != nil {
						t.Fatal(err)
					}
					writeStreams(t, reg, map[string][]byte{nginxFile: edited, catalog.SignedPath(nginxFile): signed})
				}, &v[0]},
				{"an older signed catalog replayed", "rollback", func(t *testing.T) { writeStreams(t, reg, older) }, &v[0]},
				{"a .sjson deleted", "missing", func(t *testing.T) {
					removeStream(t, reg, catalog.SignedPath(nginxFile))
					removeStream(t, reg, catalog.SignedIndexPath)
				}, nil},
				{"an expired catalog", "expired", func(t *testing.T) {
					waitExpired(t, expired)
					writeStreams(t, reg, expired)
				}, &v[2]},
				{"an index of one moment, product files of another", "mix", func(t *testing.T) {
					writeStreams(t, reg, m3)
					writeStreams(t, reg, pick(m4, catalog.IndexPath, catalog.SignedIndexPath))
				}, &v[2]},
			}
			for _, c := range cases {
				t.Run(c.reason, func(t *testing.T) {
					writeStreams(t, reg, good)
					series := `edgeproxy_catalog_refusals_total{reason="` + c.reason + `"}`
					before := metricOf(t, verifying.metrics, series)
					c.tamper(t)
					if !eventually(2*time.Minute, 200*time.Millisecond, func() bool {
						touch(verifying) // a request reads the catalog again
						return metricOf(t, verifying.metrics, series) > before
					}) {
						t.Fatalf("%s: no refusal counted as %s", c.name, c.reason)
					}
					resolves(t, verifying, v[1])
					if c.control != nil {
						resolves(t, plain, *c.control)
					}
				})
			}

			t.Run("a root file's bytes swapped", func(t *testing.T) {
				writeStreams(t, reg, good)
				series := "edgeproxy_image_fill_failures_total"
				before := metricOf(t, verifying.metrics, series)
				// nginx's root (already in edgeproxy's cache) and the older
				// version's (not yet fetched) replaced by other bytes.
				for _, s := range v[:2] {
					_, root := catalog.ImagePaths(s.fp, catalog.RootSquashfs)
					if err := os.WriteFile(filepath.Join(reg, filepath.FromSlash(root)), bytes.Repeat([]byte("x"), 300<<10), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				c := remoteClient(t, "incus", "appliance", verifying.url, verifying.cert)
				c.wantExport(t, "appliance:nginx", v[1].fp)
				if out, err := c.runErr("image", "export", "appliance:"+v[0].fp, t.TempDir()); err == nil {
					t.Errorf("the export of an image whose root was swapped succeeded:\n%s", out)
				}
				if got := metricOf(t, verifying.metrics, series); got <= before {
					t.Errorf("%s = %v after a swapped root was fetched, want more than %v", series, got, before)
				}
				resolves(t, verifying, v[1])
			})

			t.Run("the publisher's next release", func(t *testing.T) {
				writeStreams(t, reg, good)
				pub(reg, v[2])
				if !eventually(2*time.Minute, 200*time.Millisecond, func() bool {
					out, _ := remoteClient(t, "incus", "appliance", verifying.url, verifying.cert).runErr("image", "info", "appliance:nginx")
					return strings.Contains(out, "Fingerprint: "+v[2].fp)
				}) {
					t.Errorf("edgeproxy --keyring does not serve the publisher's next release")
				}
			})
		})
	}
}

// readStreams reads every catalog file of registry reg, by path.
func readStreams(t testing.TB, reg string) map[string][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(reg, "streams", "v1", "*"))
	out := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out["streams/v1/"+filepath.Base(f)] = data
	}
	return out
}

// writeStreams writes catalog files (by path) into registry reg.
func writeStreams(t testing.TB, reg string, files map[string][]byte) {
	t.Helper()
	for p, data := range files {
		if err := os.WriteFile(filepath.Join(reg, filepath.FromSlash(p)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func removeStream(t testing.TB, reg, path string) {
	t.Helper()
	if err := os.Remove(filepath.Join(reg, filepath.FromSlash(path))); err != nil {
		t.Fatal(err)
	}
}

// pick is the files of m at paths.
func pick(m map[string][]byte, paths ...string) map[string][]byte {
	out := map[string][]byte{}
	for _, p := range paths {
		out[p] = m[p]
	}
	return out
}

// productFileOf is the product file that index.json (of files) names for
// product.
func productFileOf(t testing.TB, files map[string][]byte, product string) string {
	t.Helper()
	ix, err := catalog.ParseIndex(files[catalog.IndexPath])
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ix.Index {
		if slices.Contains(e.Products, product) {
			return e.Path
		}
	}
	t.Fatalf("index.json names no file for %s", product)
	return ""
}

// withoutVersion is product file data with the version holding image fp
// removed: its alias then names the version before.
func withoutVersion(t testing.TB, data []byte, fp string) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	removed := false
	for _, p := range doc["products"].(map[string]any) {
		versions := p.(map[string]any)["versions"].(map[string]any)
		for name, ver := range versions {
			b, _ := json.Marshal(ver)
			if bytes.Contains(b, []byte(fp)) {
				delete(versions, name)
				removed = true
			}
		}
	}
	if !removed {
		t.Fatalf("no version holds %s", fp)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// waitExpired waits until the signed index of files has expired.
func waitExpired(t testing.TB, files map[string][]byte) {
	t.Helper()
	st, err := catalog.ReadStamp(files[catalog.IndexPath])
	if err != nil {
		t.Fatal(err)
	}
	expires, err := st.ExpiresAt()
	if err != nil {
		t.Fatal(err)
	}
	for time.Now().Before(expires.Add(time.Second)) {
		time.Sleep(100 * time.Millisecond) // waiting for a time, not for another process
	}
}

// metricOf is the value of series on a /metrics page (0: absent).
func metricOf(t testing.TB, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(page), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// touch asks run for index.json, which makes it read the catalog again
// once its TTL has passed.
func touch(run edgeRun) {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 30 * time.Second}
	defer c.CloseIdleConnections()
	if resp, err := c.Get(run.url + "/" + catalog.IndexPath); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// The reference SimpleStreams client through edgeproxy: sstream-query and
// sstream-mirror --keyring read a signed registry through edgeproxy with
// and without --keyring. Once a bucket writer edits the signed text of the
// product file, the reference client refuses what the plain edgeproxy
// passes on, and still reads the last signed catalog through the
// verifying one.
func TestReferenceClientThroughEdgeproxy(t *testing.T) {
	ref := signingtest.NewReference(t)
	key := signingtest.NewKey(t, "ci")
	env := []string{"PUBLISH_SIGNING_KEY=" + signingtest.WriteSecret(t, key)}
	keyring := signingtest.WriteKeyring(t, key)
	reg := filepath.Join(t.TempDir(), "registry")
	v := versions(t, "nginx", 2)
	for _, s := range v {
		publishSample(t, env, s, "--bucket", reg, "--no-delta")
	}
	verifying := launchEdgeproxy(t, nil, nil, t.TempDir(), "--bucket", reg, "--keyring", keyring, "--catalog-ttl", "50ms", "--quiet")
	plain := launchEdgeproxy(t, nil, nil, t.TempDir(), "--bucket", reg, "--catalog-ttl", "50ms", "--quiet")
	_, root := catalog.ImagePaths(v[1].fp, catalog.RootSquashfs)
	query := func(run edgeRun) (string, error) {
		t.Setenv("SSL_CERT_FILE", run.cert)
		return ref.SStream("sstream-query", "--keyring", keyring, "--output-format", "%(path)s", run.url+"/"+catalog.SignedIndexPath)
	}
	for name, run := range map[string]edgeRun{"verifying": verifying, "plain": plain} {
		if out, err := query(run); err != nil || !strings.Contains(out, root) {
			t.Errorf("sstream-query through the %s edgeproxy: %v\n%s", name, err, out)
		}
		t.Setenv("SSL_CERT_FILE", run.cert)
		dest := t.TempDir()
		if out, err := ref.SStream("sstream-mirror", "--keyring", keyring, run.url+"/"+catalog.SignedIndexPath, dest); err != nil {
			t.Errorf("sstream-mirror through the %s edgeproxy: %v\n%s", name, err, out)
		} else if !sameFile(t, filepath.Join(dest, filepath.FromSlash(root)), filepath.Join(reg, filepath.FromSlash(root))) {
			t.Errorf("sstream-mirror through the %s edgeproxy: %s differs", name, root)
		}
	}
	good := readStreams(t, reg)
	edited := withoutVersion(t, good[catalog.ImagesPath], v[1].fp)
	sp := catalog.SignedPath(catalog.ImagesPath)
	writeStreams(t, reg, map[string][]byte{catalog.ImagesPath: edited,
		sp: bytes.Replace(good[sp], bytes.TrimSpace(good[catalog.ImagesPath]), bytes.TrimSpace(edited), 1)})
	if !eventually(2*time.Minute, 200*time.Millisecond, func() bool {
		_, err := query(plain)
		return err != nil
	}) {
		t.Error("sstream-query accepts the edited product file through the plain edgeproxy")
	}
	if out, err := query(verifying); err != nil || !strings.Contains(out, root) {
		t.Errorf("sstream-query through the verifying edgeproxy after the edit: %v\n%s", err, out)
	}
}
