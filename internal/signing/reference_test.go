package signing_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/signing"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
)

// The reference verifiers (signingtest.Reference): gpgv, and the
// reference SimpleStreams client (sstream-query, sstream-mirror). They are
// missing on some machines: the tests skip then, and fail under
// REGISTRY_E2E=require (as `make test` and CI set).

// signedTree is a SimpleStreams tree signed the way the registry will sign
// it: index.json and images.json, their .sjson (index.sjson's path naming
// images.sjson, as the reference client expects) and the image files.
type signedTree struct {
	dir   string
	files map[string][]byte // path in the tree: content of each image file
}

func writeSignedTree(t *testing.T, k *testKey) *signedTree {
	t.Helper()
	tree := &signedTree{dir: t.TempDir(), files: map[string][]byte{}}
	products := map[string]any{}
	for _, app := range []string{"nginx", "redis"} {
		items := map[string]any{}
		for ftype, name := range map[string]string{"incus.tar.xz": "incus.tar.xz", "squashfs": "rootfs.squashfs"} {
			content := []byte(app + " " + ftype + " content\n")
			path := "images/" + app + "/" + name
			tree.files[path] = content
			items[ftype] = map[string]any{"ftype": ftype, "path": path, "sha256": digest.Of(content), "size": len(content)}
		}
		products[app+":amd64"] = map[string]any{
			"aliases": app, "arch": "amd64", "os": "debian", "release": "bookworm", "variant": app,
			"versions": map[string]any{"20261201_1200": map[string]any{"items": items}},
		}
	}
	images := marshalDoc(t, map[string]any{"content_id": "images", "datatype": "image-downloads", "format": "products:1.0", "products": products})
	index := func(path string) []byte {
		return marshalDoc(t, map[string]any{"format": "index:1.0", "index": map[string]any{"images": map[string]any{
			"datatype": "image-downloads", "format": "products:1.0", "path": path, "products": []string{"nginx:amd64", "redis:amd64"},
		}}})
	}
	docs := map[string][]byte{
		"streams/v1/images.json":  images,
		"streams/v1/images.sjson": k.sign(t, string(images)),
		"streams/v1/index.json":   index("streams/v1/images.json"),
		"streams/v1/index.sjson":  k.sign(t, string(index("streams/v1/images.sjson"))),
	}
	for path, data := range tree.files {
		docs[path] = data
	}
	for path, data := range docs {
		filetest.Write(t, filepath.Join(tree.dir, path), data)
	}
	return tree
}

func marshalDoc(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestGpgvAcceptsSignedDocuments: gpgv accepts every document Sign makes,
// including the awkward ones (dash lines, no final newline, empty), and
// rejects one with a byte changed.
func TestGpgvAcceptsSignedDocuments(t *testing.T) {
	r := signingtest.NewReference(t)
	k := newTestKey(t, "gpgv")
	keyring := signingtest.WriteKeyring(t, k.Key)
	dir := t.TempDir()
	i := 0
	for name, doc := range roundTripDocs {
		i++
		file := filepath.Join(dir, "doc"+string(rune('a'+i))+".sjson")
		filetest.Write(t, file, k.sign(t, doc))
		if out, err := r.GPGV(keyring, file); err != nil {
			t.Errorf("gpgv rejects the signed %s: %v\n%s", name, err, out)
		}
	}
	signed := k.sign(t, sampleDoc)
	filetest.Write(t, filepath.Join(dir, "tampered.sjson"), bytes.Replace(signed, []byte(`"nginx"`), []byte(`"evil!"`), 1))
	if out, err := r.GPGV(keyring, filepath.Join(dir, "tampered.sjson")); err == nil {
		t.Errorf("gpgv accepts a tampered document:\n%s", out)
	}
}

// TestReferenceClientReadsSignedTree: the reference client lists and
// mirrors the signed tree with --keyring; gpgv accepts each .sjson.
func TestReferenceClientReadsSignedTree(t *testing.T) {
	r := signingtest.NewReference(t)
	k := newTestKey(t, "reference")
	keyring := signingtest.WriteKeyring(t, k.Key)
	tree := writeSignedTree(t, k)
	index := filepath.Join(tree.dir, "streams", "v1", "index.sjson")

	for _, f := range []string{"index.sjson", "images.sjson"} {
		if out, err := r.GPGV(keyring, filepath.Join(tree.dir, "streams", "v1", f)); err != nil {
			t.Errorf("gpgv rejects %s: %v\n%s", f, err, out)
		}
	}

	out, err := r.SStream("sstream-query", "--keyring", keyring, "--output-format", "%(path)s %(sha256)s", index)
	if err != nil {
		t.Fatalf("sstream-query: %v\n%s", err, out)
	}
	for path, content := range tree.files {
		if !strings.Contains(out, path+" "+digest.Of(content)) {
			t.Errorf("sstream-query output lacks %s:\n%s", path, out)
		}
	}

	dest := t.TempDir()
	if out, err := r.SStream("sstream-mirror", "--keyring", keyring, index, dest); err != nil {
		t.Fatalf("sstream-mirror: %v\n%s", err, out)
	}
	for path, content := range tree.files {
		got, err := os.ReadFile(filepath.Join(dest, path))
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("mirrored %s = %q, %v; want %q", path, got, err, content)
		}
	}
}

// TestReferenceClientRejectsTampering: an alias edited in images.sjson, an
// index.sjson pointing elsewhere, or a tree signed by a key not in the
// keyring: gpgv, sstream-query and sstream-mirror all refuse, and so does
// Verify.
func TestReferenceClientRejectsTampering(t *testing.T) {
	r := signingtest.NewReference(t)
	k := newTestKey(t, "reference")
	keyring := signingtest.WriteKeyring(t, k.Key)
	kr := k.keyring(t)
	cases := map[string]struct {
		file         string
		tamper       func(t *testing.T, tree *signedTree, signed []byte) []byte
		verifyWanted error
	}{
		"alias edited in images.sjson": {"images.sjson", func(t *testing.T, _ *signedTree, signed []byte) []byte {
			return replaceOnce(t, signed, `"aliases": "redis"`, `"aliases": "nginx"`)
		}, signing.ErrBadSignature},
		"index.sjson path changed": {"index.sjson", func(t *testing.T, _ *signedTree, signed []byte) []byte {
			return replaceOnce(t, signed, `"path": "streams/v1/images.sjson"`, `"path": "streams/v1/other.sjson"`)
		}, signing.ErrBadSignature},
		"images.sjson signed by another key": {"images.sjson", func(t *testing.T, tree *signedTree, _ []byte) []byte {
			doc, err := os.ReadFile(filepath.Join(tree.dir, "streams", "v1", "images.json"))
			if err != nil {
				t.Fatal(err)
			}
			return newTestKey(t, "stranger").sign(t, string(doc))
		}, signing.ErrUnknownKey},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			tree := writeSignedTree(t, k)
			path := filepath.Join(tree.dir, "streams", "v1", c.file)
			signed, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tampered := c.tamper(t, tree, signed)
			filetest.Write(t, path, tampered)
			if _, err := kr.Verify(tampered, testNow); !errors.Is(err, c.verifyWanted) {
				t.Errorf("Verify = %v, want %v", err, c.verifyWanted)
			}
			if out, err := r.GPGV(keyring, path); err == nil {
				t.Errorf("gpgv accepts it:\n%s", out)
			}
			index := filepath.Join(tree.dir, "streams", "v1", "index.sjson")
			// Each refuses because gpgv did (not, say, for a missing file).
			if out, err := r.SStream("sstream-query", "--keyring", keyring, index); err == nil || !strings.Contains(out, "'gpgv'") {
				t.Errorf("sstream-query: %v, want a gpgv failure:\n%s", err, out)
			}
			dest := t.TempDir()
			if out, err := r.SStream("sstream-mirror", "--keyring", keyring, index, dest); err == nil || !strings.Contains(out, "'gpgv'") {
				t.Errorf("sstream-mirror: %v, want a gpgv failure:\n%s", err, out)
			}
		})
	}
}

func replaceOnce(t *testing.T, data []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%q not in\n%s", old, data)
	}
	return bytes.Replace(data, []byte(old), []byte(new), 1)
}
