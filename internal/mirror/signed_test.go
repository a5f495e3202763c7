package mirror

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/signing"
)

// Signed sources: `publish mirror --keyring` takes a source only through
// its verified signatures.

// testKey is a signing key made for a test.
type testKey struct {
	signer  *signing.Signer
	secret  []byte
	fpr     signing.Fingerprint
	keyring *signing.Keyring
}

func newTestKey(t *testing.T, name string) *testKey {
	t.Helper()
	made := time.Now().Add(-time.Hour)
	secret, fpr, err := signing.Generate(name, "", nil, made)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := signing.ParseSecretKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	k := &testKey{secret: secret, fpr: fpr}
	if k.signer, err = sk.Signer(nil, made); err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := sk.ExportPublic(&pub, true); err != nil {
		t.Fatal(err)
	}
	if k.keyring, err = signing.ParseKeyring(pub.Bytes()); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *testKey) sign(t *testing.T, doc []byte) []byte {
	t.Helper()
	out, err := k.signer.Sign(doc, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// editJSON decodes a JSON object, edits it and encodes it as the
// registry writes its documents (indented, a final newline).
func editJSON(t *testing.T, data []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// signedPath is X.sjson for X.json.
func signedPath(p string) string { return strings.TrimSuffix(p, ".json") + ".sjson" }

// indexEntries edits each entry of an index document.
func indexEntries(m map[string]any, edit func(e map[string]any)) {
	for _, e := range m["index"].(map[string]any) {
		edit(e.(map[string]any))
	}
}

// signOurs signs a tree as a signed registry does: each products file and
// index.json stamped (updated, registry_serial, registry_expires), each
// index entry carrying the sha256 of its products file (registry_sha256),
// X.sjson the clear-signed bytes of X.json, and index.sjson the index with
// each entry's path naming the signed products file.
func signOurs(t *testing.T, files map[string][]byte, k *testKey, expires time.Time) {
	t.Helper()
	now := time.Now()
	stamp := func(m map[string]any) {
		m["updated"] = now.UTC().Format(time.RFC1123Z)
		m["registry_serial"] = 1
		m["registry_expires"] = expires.UTC().Format(time.RFC3339)
	}
	index := editJSON(t, files[catalog.IndexPath], func(m map[string]any) {
		stamp(m)
		indexEntries(m, func(e map[string]any) {
			p := e["path"].(string)
			files[p] = editJSON(t, files[p], stamp)
			files[signedPath(p)] = k.sign(t, files[p])
			sum := sha256.Sum256(files[p])
			e["registry_sha256"] = hex.EncodeToString(sum[:])
		})
	})
	files[catalog.IndexPath] = index
	files[signedPath(catalog.IndexPath)] = k.sign(t, editJSON(t, index, func(m map[string]any) {
		indexEntries(m, func(e map[string]any) { e["path"] = signedPath(e["path"].(string)) })
	}))
}

// gpgClearsign signs docs the way other publishers do (gpg --clearsign,
// with the real gpg: the final newline of a file is not signed) and
// returns the signed forms by path.
func gpgClearsign(t *testing.T, k *testKey, docs map[string][]byte) map[string][]byte {
	t.Helper()
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		if os.Getenv("REGISTRY_E2E") == "require" {
			t.Fatal("gpg not found (REGISTRY_E2E=require)")
		}
		t.Skip("gpg not found")
	}
	home, dir := t.TempDir(), t.TempDir()
	run := func(stdin []byte, args ...string) {
		t.Helper()
		cmd := exec.Command(gpg, append([]string{"--homedir", home, "--batch", "--yes", "--no-tty"}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run(k.secret, "--import")
	out := map[string][]byte{}
	for path, doc := range docs {
		in, signedFile := filepath.Join(dir, "in"), filepath.Join(dir, "out.sjson")
		if err := os.WriteFile(in, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		run(nil, "--digest-algo", "SHA256", "--local-user", string(k.fpr), "--clearsign", "--output", signedFile, in)
		b, err := os.ReadFile(signedFile)
		if err != nil {
			t.Fatal(err)
		}
		out[signedPath(path)] = b
	}
	return out
}

// signForeign signs a tree as cloud-images.ubuntu.com's and
// images.linuxcontainers.org's are (gpg --clearsign, none of this
// registry's fields; SimpleStreams' own "updated" on the index, its
// entries and the products files, as cloud-images.ubuntu.com writes it):
// each products file X.json gets X.sjson, and index.sjson is the index
// with each entry's path naming X.sjson.
func signForeign(t *testing.T, files map[string][]byte, k *testKey) {
	t.Helper()
	updated := func(m map[string]any) { m["updated"] = "Thu, 05 Dec 2024 10:13:22 +0000" }
	docs := map[string][]byte{}
	index := editJSON(t, files[catalog.IndexPath], func(m map[string]any) {
		updated(m)
		indexEntries(m, func(e map[string]any) {
			p := e["path"].(string)
			updated(e)
			docs[p] = editJSON(t, files[p], updated)
			e["path"] = signedPath(p)
		})
	})
	docs[catalog.IndexPath] = index
	for path, b := range gpgClearsign(t, k, docs) {
		files[path] = b
	}
}

// openLog records the paths a source opens.
type openLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *openLog) hook(src *memSource) {
	src.hook = func(path string, r io.Reader) io.Reader {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.paths = append(l.paths, path)
		return r
	}
}

// unsignedReads lists the catalog files read that are not signed.
func (l *openLog) unsignedReads() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(l.paths), func(p string) bool {
		return !strings.HasPrefix(p, "streams/") || strings.HasSuffix(p, ".sjson")
	})
}

// A signed source, of this registry's kind (one products file, and
// three) or another publisher's (gpg --clearsign, no extra fields), is
// mirrored through its signatures: its unsigned .json files, made hostile
// here, are never read.
func TestMirrorSignedSources(t *testing.T) {
	k := newTestKey(t, "source")
	for name, make := range map[string]func(t *testing.T) *memSource{
		"ours, one products file": func(t *testing.T) *memSource {
			src, _ := newSource(4, 2)
			signOurs(t, src.files, k, time.Now().Add(time.Hour))
			return src
		},
		"ours, three products files": func(t *testing.T) *memSource {
			src, _ := splitSource(4, 2, 3)
			signOurs(t, src.files, k, time.Now().Add(time.Hour))
			return src
		},
		"another publisher's, gpg --clearsign": func(t *testing.T) *memSource {
			src, _ := newSource(4, 2)
			signForeign(t, src.files, k)
			return src
		},
	} {
		t.Run(name, func(t *testing.T) {
			src := make(t)
			for path := range src.files {
				if strings.HasPrefix(path, "streams/") && strings.HasSuffix(path, ".json") {
					src.files[path] = []byte(`{"format": "index:1.0", "index": {"evil": {"datatype": "image-downloads", "format": "products:1.0", "path": "../evil.json", "products": ["x"]}}}`)
				}
			}
			var log openLog
			log.hook(src)
			r, _ := newRegistry()
			rep, err := Run(ctx, src, r, Options{Keyring: k.keyring})
			if err != nil || rep.Copied != 8 || len(rep.Failed) != 0 || !slices.Equal(rep.SignedBy, []string{string(k.fpr)}) {
				t.Fatalf("mirror --keyring = %+v, %v; want 8 versions copied, signed by %s", rep, err, k.fpr)
			}
			if reads := log.unsignedReads(); len(reads) != 0 {
				t.Errorf("unsigned catalog files read: %q", reads)
			}
			mustVerify(t, r)
		})
	}
}

// An unsigned, badly signed or expired source, or one whose signed pieces
// do not belong together, is refused with one line; nothing is written.
func TestMirrorRefusesBadlySignedSources(t *testing.T) {
	k, stranger := newTestKey(t, "source"), newTestKey(t, "stranger")
	later := time.Now().Add(time.Hour)
	for name, c := range map[string]struct {
		make func(t *testing.T) *memSource
		want string
	}{
		"unsigned": {func(t *testing.T) *memSource {
			src, _ := newSource(2, 1)
			return src
		}, "not signed: streams/v1/index.sjson not found"},
		"index.sjson not clear-signed": {func(t *testing.T) *memSource {
			src, _ := newSource(2, 1)
			signOurs(t, src.files, k, later)
			src.files["streams/v1/index.sjson"] = src.files[catalog.IndexPath]
			return src
		}, "not a clear-signed document"},
		"signed by a key not in the keyring": {func(t *testing.T) *memSource {
			src, _ := newSource(2, 1)
			signOurs(t, src.files, stranger, later)
			return src
		}, "signed by a key not in the keyring"},
		"products file edited after signing": {func(t *testing.T) *memSource {
			src, tree := newSource(2, 1)
			signOurs(t, src.files, k, later)
			pks := tree.Catalog.ProductKeys()
			a, b := tree.Catalog.Products[pks[0]].Aliases, tree.Catalog.Products[pks[1]].Aliases
			src.files["streams/v1/images.sjson"] = bytes.Replace(src.files["streams/v1/images.sjson"], []byte(`"aliases": "`+b+`"`), []byte(`"aliases": "`+a+`"`), 1)
			return src
		}, "bad signature"},
		"expired": {func(t *testing.T) *memSource {
			src, _ := newSource(2, 1)
			signOurs(t, src.files, k, time.Now().Add(-time.Minute))
			return src
		}, "streams/v1/index.sjson expired at"},
		"index and products file of different moments": {func(t *testing.T) *memSource {
			older, _ := newSource(2, 1)
			signOurs(t, older.files, k, later)
			src, _ := newSource(2, 2)
			signOurs(t, src.files, k, later)
			src.files["streams/v1/images.sjson"] = older.files["streams/v1/images.sjson"]
			return src
		}, "streams/v1/images.sjson is not the products file the signed index names"},
		"signed index naming an unsigned products file": {func(t *testing.T) *memSource {
			src, _ := newSource(2, 1)
			signOurs(t, src.files, k, later)
			src.files["streams/v1/index.sjson"] = k.sign(t, src.files[catalog.IndexPath])
			return src
		}, `names streams/v1/images.json, not a signed file (.sjson)`},
		"another publisher's products file of another catalog": {func(t *testing.T) *memSource {
			src, _ := newSource(2, 1)
			src.files[catalog.ImagesPath] = editJSON(t, src.files[catalog.ImagesPath], func(m map[string]any) { m["content_id"] = "other" })
			signForeign(t, src.files, k)
			return src
		}, `content_id "other" is not the one the signed index names ("images")`},
	} {
		t.Run(name, func(t *testing.T) {
			src := c.make(t)
			r, s := newRegistry()
			rep, err := Run(ctx, src, r, Options{Keyring: k.keyring})
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("mirror --keyring = %+v, %v; want one line containing %q", rep, err, c.want)
			}
			if objs, _ := s.List(ctx, ""); len(objs) != 0 {
				t.Errorf("a refused mirror wrote %d objects", len(objs))
			}
		})
	}
}
