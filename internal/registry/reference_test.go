package registry

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
	"github.com/incus-appliance/registry/internal/store/dirstore"
)

// signedTree publishes into a folder, signing with key: two versions of
// nginx (with a delta when xdelta3 is there), redis and a VM image, in a
// registry of shards catalog files. It returns the folder.
func signedTree(t *testing.T, key *signingtest.Key, shards int) string {
	t.Helper()
	dir := t.TempDir()
	st, err := dirstore.Open(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := &Registry{Store: st, Shards: shards, Signing: &Signing{Signer: key.Signer}}
	vs := updates(t, 2)
	for _, req := range []PublishRequest{vs[0], vs[1], makeImage(t, "redis", t0, 3), withVMDisk(t, makeImage(t, "debian-vm", t0, 4), 9)} {
		mustPublish(t, r, req)
	}
	return dir
}

// TestReferenceClientReadsSignedRegistry: the reference SimpleStreams
// client lists (sstream-query) and mirrors (sstream-mirror) what a signing
// registry publishes, one catalog file or several, with --keyring: every
// file the catalog lists, with its digest; gpgv accepts every .sjson.
func TestReferenceClientReadsSignedRegistry(t *testing.T) {
	ref := signingtest.NewReference(t)
	key := signingtest.NewKey(t, "registry")
	keyring := signingtest.WriteKeyring(t, key)
	eachLayout(t, func(t *testing.T, shards int) {
		dir := signedTree(t, key, shards)
		sjson, _ := filepath.Glob(filepath.Join(dir, "streams", "v1", "*.sjson"))
		if len(sjson) != 1+catalog.Layout(shards).Count() {
			t.Fatalf("%d .sjson files, want %d: %v", len(sjson), 1+catalog.Layout(shards).Count(), sjson)
		}
		for _, f := range sjson {
			if out, err := ref.GPGV(keyring, f); err != nil {
				t.Errorf("gpgv rejects %s: %v\n%s", f, err, out)
			}
		}
		index := filepath.Join(dir, filepath.FromSlash(catalog.SignedIndexPath))
		out, err := ref.SStream("sstream-query", "--keyring", keyring, "--output-format", "%(path)s %(sha256)s", index)
		if err != nil {
			t.Fatalf("sstream-query: %v\n%s", err, out)
		}
		items := catalogItems(t, dir)
		for path, sum := range items {
			if !strings.Contains(out, path+" "+sum) {
				t.Errorf("sstream-query does not list %s %s:\n%s", path, sum, out)
			}
		}
		dest := t.TempDir()
		if out, err := ref.SStream("sstream-mirror", "--keyring", keyring, index, dest); err != nil {
			t.Fatalf("sstream-mirror: %v\n%s", err, out)
		}
		for path := range items {
			got, err := os.ReadFile(filepath.Join(dest, path))
			want, _ := os.ReadFile(filepath.Join(dir, path))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("mirrored %s: %v", path, err)
			}
		}
	})
}

// catalogItems maps every item path of the registry in dir to its sha256.
func catalogItems(t *testing.T, dir string) map[string]string {
	t.Helper()
	st, err := dirstore.Open(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, _, err := New(st).readCatalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range c.Products {
		for _, v := range p.Versions {
			for _, it := range v.Items {
				out[it.Path] = it.SHA256
			}
		}
	}
	return out
}

// TestReferenceClientRefusesTamperedRegistry: a bucket writer without the
// key edits what a signing registry published: an alias moved to another
// product in a signed product file, a root file's bytes swapped, a
// product file signed again with a key not in the keyring. The reference
// client refuses each (sstream-mirror, and sstream-query for the signed
// documents), gpgv rejects each edited .sjson, and verify --keyring names
// each.
func TestReferenceClientRefusesTamperedRegistry(t *testing.T) {
	ref := signingtest.NewReference(t)
	key := signingtest.NewKey(t, "registry")
	keyring := signingtest.WriteKeyring(t, key)
	eachLayout(t, func(t *testing.T, shards int) {
		clean := signedTree(t, key, shards)
		products := filepath.FromSlash(catalog.SignedPath(catalog.Layout(shards).FileOf("redis:amd64")))
		cases := map[string]struct {
			tamper func(t *testing.T, dir string) (file string)
			query  bool   // sstream-query refuses it too (it reads no image file)
			status string // what verify --keyring says of the signed document ("": a file problem)
			why    string // in the reference client's refusal
		}{
			"alias moved": {func(t *testing.T, dir string) string {
				f := filepath.Join(dir, products)
				rewrite(t, f, func(b []byte) []byte { return replaceOnce(t, b, `"aliases": "redis"`, `"aliases": "nginx"`) })
				return f
			}, true, "bad-signature", "'gpgv'"},
			"root swapped": {func(t *testing.T, dir string) string {
				roots, _ := filepath.Glob(filepath.Join(dir, "images", "*", "rootfs.squashfs"))
				a, b := readFile(t, roots[0]), readFile(t, roots[1])
				writeFile(t, roots[0], b)
				writeFile(t, roots[1], a)
				return ""
			}, false, "", "InvalidChecksum"},
			"signed by a stranger": {func(t *testing.T, dir string) string {
				f := filepath.Join(dir, products)
				body := readFile(t, strings.TrimSuffix(f, ".sjson")+".json")
				signed, err := signingtest.NewKey(t, "stranger").Signer.Sign(body, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, f, signed)
				return f
			}, true, "unknown-key", "'gpgv'"},
		}
		for name, c := range cases {
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				if out, err := exec.Command("cp", "-a", clean+"/.", dir).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v\n%s", err, out)
				}
				file := c.tamper(t, dir)
				if file != "" {
					if out, err := ref.GPGV(keyring, file); err == nil {
						t.Errorf("gpgv accepts %s:\n%s", file, out)
					}
				}
				index := filepath.Join(dir, filepath.FromSlash(catalog.SignedIndexPath))
				if out, err := ref.SStream("sstream-mirror", "--keyring", keyring, index, t.TempDir()); err == nil || !strings.Contains(out, c.why) {
					t.Errorf("sstream-mirror: %v, want a failure saying %q:\n%s", err, c.why, out)
				}
				if out, err := ref.SStream("sstream-query", "--keyring", keyring, index); c.query && err == nil {
					t.Errorf("sstream-query accepts it:\n%s", out)
				}
				rep := verifyDir(t, dir, VerifyOptions{Keyring: signingtest.Keyring(t, key)})
				if rep.OK() {
					t.Errorf("verify --keyring finds nothing wrong")
				}
				if c.status != "" && !slicesContainsStatus(rep.Signed, filepath.ToSlash(strings.TrimPrefix(file, dir+"/")), c.status) {
					t.Errorf("verify --keyring: %+v, want %s for %s", rep.Signed, c.status, file)
				}
			})
		}
	})
}

func verifyDir(t *testing.T, dir string, opts VerifyOptions) *VerifyReport {
	t.Helper()
	st, err := dirstore.Open(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := New(st).VerifyWith(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func slicesContainsStatus(docs []SignedDocument, path, status string) bool {
	for _, d := range docs {
		if d.Path == path && d.Status == status {
			return true
		}
	}
	return false
}

func rewrite(t *testing.T, path string, edit func([]byte) []byte) {
	t.Helper()
	writeFile(t, path, edit(readFile(t, path)))
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func replaceOnce(t *testing.T, data []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%q not in\n%s", old, data)
	}
	return bytes.Replace(data, []byte(old), []byte(new), 1)
}
