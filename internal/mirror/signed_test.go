package mirror

import (
	"bytes"
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
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/memstore"
	"github.com/incus-appliance/registry/internal/tooltest"
)

// Signed sources: `publish mirror --keyring` takes a source only through
// its verified signatures.

// signOurs makes a signed registry's tree of src's: src mirrored into a
// registry of shards catalog files that signs with k (every catalog write
// stamped and signed, catalog/stamp.go), at now, valid for validity.
func signOurs(t *testing.T, src *memSource, k *signingtest.Key, shards int, now time.Time, validity time.Duration) *memSource {
	t.Helper()
	s := memstore.New()
	r := &registry.Registry{Store: s, BackoffBase: time.Millisecond, Shards: shards,
		Signing: &registry.Signing{Signer: k.Signer, Validity: validity}, Now: func() time.Time { return now }}
	if rep, err := Run(ctx, src, r, Options{}); err != nil || len(rep.Failed) != 0 {
		t.Fatalf("signing the source: %+v, %v", rep, err)
	}
	return &memSource{files: storeFiles(t, s)}
}

// storeFiles reads every object of s.
func storeFiles(t *testing.T, s store.Store) map[string][]byte {
	t.Helper()
	objs, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, o := range objs {
		rc, _, err := s.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		files[o.Key], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// sign clear-signs doc with k now.
func sign(t *testing.T, k *signingtest.Key, doc []byte) []byte {
	t.Helper()
	out, err := k.Signer.Sign(doc, time.Now())
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

// gpgClearsign signs docs the way other publishers do (gpg --clearsign,
// with the real gpg: the final newline of a file is not signed) and
// returns the signed forms by path.
func gpgClearsign(t *testing.T, k *signingtest.Key, docs map[string][]byte) map[string][]byte {
	t.Helper()
	gpg := tooltest.Require(t, "gpg")[0]
	home, dir := t.TempDir(), t.TempDir()
	run := func(stdin []byte, args ...string) {
		t.Helper()
		cmd := exec.Command(gpg, append([]string{"--homedir", home, "--batch", "--yes", "--no-tty"}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run(k.Secret, "--import")
	out := map[string][]byte{}
	for path, doc := range docs {
		in, signedFile := filepath.Join(dir, "in"), filepath.Join(dir, "out.sjson")
		if err := os.WriteFile(in, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		run(nil, "--digest-algo", "SHA256", "--local-user", string(k.Fingerprint), "--clearsign", "--output", signedFile, in)
		b, err := os.ReadFile(signedFile)
		if err != nil {
			t.Fatal(err)
		}
		out[catalog.SignedPath(path)] = b
	}
	return out
}

// signForeign signs a tree as cloud-images.ubuntu.com's and
// images.linuxcontainers.org's are (gpg --clearsign, none of this
// registry's fields; SimpleStreams' own "updated" on the index, its
// entries and the products files, as cloud-images.ubuntu.com writes it):
// each products file X.json gets X.sjson, and index.sjson is the index
// with each entry's path naming X.sjson.
func signForeign(t *testing.T, files map[string][]byte, k *signingtest.Key) {
	t.Helper()
	updated := func(m map[string]any) { m["updated"] = "Thu, 05 Dec 2024 10:13:22 +0000" }
	docs := map[string][]byte{}
	index := editJSON(t, files[catalog.IndexPath], func(m map[string]any) {
		updated(m)
		for _, e := range m["index"].(map[string]any) {
			e := e.(map[string]any)
			p := e["path"].(string)
			updated(e)
			docs[p] = editJSON(t, files[p], updated)
			e["path"] = catalog.SignedPath(p)
		}
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

// A signed source, a signed registry's (one products file, and three) or
// another publisher's (gpg --clearsign, no extra fields), is mirrored
// through its signatures: its unsigned .json files, made hostile here,
// are never read. A mirror with its own key re-signs what it writes: its
// catalog verifies with its key, not the source's.
func TestMirrorSignedSources(t *testing.T) {
	k, own := signingtest.NewKey(t, "source"), signingtest.NewKey(t, "mirror")
	now := time.Now()
	for name, make := range map[string]func(t *testing.T) *memSource{
		"ours, one products file": func(t *testing.T) *memSource {
			src, _ := newSource(4, 2)
			return signOurs(t, src, k, 1, now, time.Hour)
		},
		"ours, three products files": func(t *testing.T) *memSource {
			src, _ := newSource(4, 2)
			return signOurs(t, src, k, 3, now, time.Hour)
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
			r.Signing = &registry.Signing{Signer: own.Signer}
			rep, err := Run(ctx, src, r, Options{Keyring: signingtest.Keyring(t, k)})
			if err != nil || rep.Copied != 8 || len(rep.Failed) != 0 || !slices.Equal(rep.SignedBy, []string{string(k.Fingerprint)}) {
				t.Fatalf("mirror --keyring = %+v, %v; want 8 versions copied, signed by %s", rep, err, k.Fingerprint)
			}
			if reads := log.unsignedReads(); len(reads) != 0 {
				t.Errorf("unsigned catalog files read: %q", reads)
			}
			for key, ok := range map[*signingtest.Key]bool{own: true, k: false} {
				vr, err := r.VerifyWith(ctx, registry.VerifyOptions{Keyring: signingtest.Keyring(t, key)})
				if err != nil || vr.OK() != ok || len(vr.Signed) == 0 {
					t.Errorf("verify with the key of %s = %+v, %v; want ok=%v", key.Fingerprint, vr, err, ok)
				}
			}
		})
	}
}

// An unsigned, badly signed or expired source, or one whose signed pieces
// do not belong together, is refused with one line; nothing is written.
func TestMirrorRefusesBadlySignedSources(t *testing.T) {
	k, stranger := signingtest.NewKey(t, "source"), signingtest.NewKey(t, "stranger")
	now := time.Now()
	ours := func(t *testing.T, products, versions int, key *signingtest.Key) *memSource {
		src, _ := newSource(products, versions)
		return signOurs(t, src, key, 1, now, time.Hour)
	}
	for name, c := range map[string]struct {
		make func(t *testing.T) *memSource
		want string
	}{
		"unsigned": {func(t *testing.T) *memSource {
			src, _ := newSource(2, 1)
			return src
		}, "not signed: streams/v1/index.sjson not found"},
		"index.sjson not clear-signed": {func(t *testing.T) *memSource {
			src := ours(t, 2, 1, k)
			src.files[catalog.SignedIndexPath] = src.files[catalog.IndexPath]
			return src
		}, "not a clear-signed document"},
		"signed by a key not in the keyring": {func(t *testing.T) *memSource {
			return ours(t, 2, 1, stranger)
		}, "signed by a key not in the keyring"},
		"products file edited after signing": {func(t *testing.T) *memSource {
			src := ours(t, 2, 1, k)
			src.files["streams/v1/images.sjson"] = bytes.Replace(src.files["streams/v1/images.sjson"], []byte(`"arch": "`), []byte(`"arch": "x`), 1)
			return src
		}, "bad signature"},
		"expired": {func(t *testing.T) *memSource {
			src, _ := newSource(2, 1)
			return signOurs(t, src, k, 1, now.Add(-2*time.Hour), time.Hour)
		}, "streams/v1/index.sjson expired at"},
		"index and products file of different moments": {func(t *testing.T) *memSource {
			older, src := ours(t, 2, 1, k), ours(t, 2, 2, k)
			src.files["streams/v1/images.sjson"] = older.files["streams/v1/images.sjson"]
			return src
		}, "streams/v1/images.sjson is not the products file the signed index names"},
		"signed index naming an unsigned products file": {func(t *testing.T) *memSource {
			src := ours(t, 2, 1, k)
			src.files[catalog.SignedIndexPath] = sign(t, k, src.files[catalog.IndexPath])
			return src
		}, `names "streams/v1/images.json", not a signed file (.sjson)`},
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
			rep, err := Run(ctx, src, r, Options{Keyring: signingtest.Keyring(t, k)})
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("mirror --keyring = %+v, %v; want one line containing %q", rep, err, c.want)
			}
			wantNothingStored(t, s)
		})
	}
}
