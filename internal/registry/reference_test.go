package registry

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
	"github.com/incus-appliance/registry/internal/store/dirstore/dirstoretest"
)

// signedTree publishes into a folder, signing with key: two versions of
// nginx (with a delta when xdelta3 is there), redis and a VM image, in a
// registry of shards catalog files. It returns the folder.
func signedTree(t *testing.T, key *signingtest.Key, shards int) string {
	t.Helper()
	dir := t.TempDir()
	r := dirRegistry(t, dir)
	r.Shards, r.Signing = shards, &Signing{Signer: key.Signer}
	vs := updates(t, 2)
	for _, req := range []PublishRequest{vs[0], vs[1], makeImage(t, "redis", t0, 3), withVMDisk(t, makeImage(t, "debian-vm", t0, 4), 9)} {
		mustPublish(t, r, req)
	}
	return dir
}

// signedLayout is a registry folder signed with key (signedTree), with
// what the reference-client tests read it with.
type signedLayout struct {
	ref     *signingtest.Reference
	key     *signingtest.Key
	keyring string // key's keyring file
	shards  int    // catalog files
	dir     string
}

// eachSignedLayout runs test on a signed registry in each catalog layout
// in turn.
func eachSignedLayout(t *testing.T, test func(t *testing.T, s signedLayout)) {
	s := signedLayout{ref: signingtest.NewReference(t), key: signingtest.NewKey(t, "registry")}
	s.keyring = signingtest.WriteKeyring(t, s.key)
	eachLayout(t, func(t *testing.T, shards int) {
		s.shards, s.dir = shards, signedTree(t, s.key, shards)
		test(t, s)
	})
}

// TestReferenceClientReadsSignedRegistry: the reference SimpleStreams
// client lists (sstream-query) and mirrors (sstream-mirror) what a signing
// registry publishes, one catalog file or several, with --keyring: every
// file the catalog lists, with its digest; gpgv accepts every .sjson.
func TestReferenceClientReadsSignedRegistry(t *testing.T) {
	eachSignedLayout(t, func(t *testing.T, s signedLayout) {
		sjson, _ := filepath.Glob(filepath.Join(s.dir, "streams", "v1", "*.sjson"))
		if len(sjson) != 1+catalog.Layout(s.shards).Count() {
			t.Fatalf("%d .sjson files, want %d: %v", len(sjson), 1+catalog.Layout(s.shards).Count(), sjson)
		}
		for _, f := range sjson {
			if out, err := s.ref.GPGV(s.keyring, f); err != nil {
				t.Errorf("gpgv rejects %s: %v\n%s", f, err, out)
			}
		}
		index := filepath.Join(s.dir, filepath.FromSlash(catalog.SignedIndexPath))
		out, err := s.ref.SStream("sstream-query", "--keyring", s.keyring, "--output-format", "%(path)s %(sha256)s", index)
		if err != nil {
			t.Fatalf("sstream-query: %v\n%s", err, out)
		}
		items := catalogItems(t, s.dir)
		for path, sum := range items {
			if !strings.Contains(out, path+" "+sum) {
				t.Errorf("sstream-query does not list %s %s:\n%s", path, sum, out)
			}
		}
		dest := t.TempDir()
		if out, err := s.ref.SStream("sstream-mirror", "--keyring", s.keyring, index, dest); err != nil {
			t.Fatalf("sstream-mirror: %v\n%s", err, out)
		}
		for path := range items {
			if got, want := filetest.Read(t, filepath.Join(dest, path)), filetest.Read(t, filepath.Join(s.dir, path)); !bytes.Equal(got, want) {
				t.Errorf("mirrored %s differs", path)
			}
		}
	})
}

// catalogItems maps every item path of the registry in dir to its sha256.
func catalogItems(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range readCatalog(t, dirRegistry(t, dir)).Products {
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
	eachSignedLayout(t, func(t *testing.T, s signedLayout) {
		products := filepath.FromSlash(catalog.SignedPath(catalog.Layout(s.shards).FileOf("redis:amd64")))
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
				a, b := filetest.Read(t, roots[0]), filetest.Read(t, roots[1])
				filetest.Write(t, roots[0], b)
				filetest.Write(t, roots[1], a)
				return ""
			}, false, "", "InvalidChecksum"},
			"signed by a stranger": {func(t *testing.T, dir string) string {
				f := filepath.Join(dir, products)
				body := filetest.Read(t, strings.TrimSuffix(f, ".sjson")+".json")
				signed, err := signingtest.NewKey(t, "stranger").Signer.Sign(body, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				filetest.Write(t, f, signed)
				return f
			}, true, "unknown-key", "'gpgv'"},
		}
		for name, c := range cases {
			t.Run(name, func(t *testing.T) {
				dir := filetest.Copy(t, s.dir)
				file := c.tamper(t, dir)
				if file != "" {
					if out, err := s.ref.GPGV(s.keyring, file); err == nil {
						t.Errorf("gpgv accepts %s:\n%s", file, out)
					}
				}
				index := filepath.Join(dir, filepath.FromSlash(catalog.SignedIndexPath))
				if out, err := s.ref.SStream("sstream-mirror", "--keyring", s.keyring, index, t.TempDir()); err == nil || !strings.Contains(out, c.why) {
					t.Errorf("sstream-mirror: %v, want a failure saying %q:\n%s", err, c.why, out)
				}
				if out, err := s.ref.SStream("sstream-query", "--keyring", s.keyring, index); c.query && err == nil {
					t.Errorf("sstream-query accepts it:\n%s", out)
				}
				rep := verifyDir(t, dir, VerifyOptions{Keyring: signingtest.Keyring(t, s.key)})
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

// verifyDir verifies the registry in the folder dir with opts.
func verifyDir(t *testing.T, dir string, opts VerifyOptions) *VerifyReport {
	t.Helper()
	rep, err := dirRegistry(t, dir).VerifyWith(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// dirRegistry is a registry on the folder dir, its store closed when the
// test ends.
func dirRegistry(t *testing.T, dir string) *Registry {
	t.Helper()
	return New(dirstoretest.Open(t, dir))
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
	filetest.Write(t, path, edit(filetest.Read(t, path)))
}

func replaceOnce(t *testing.T, data []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%q not in\n%s", old, data)
	}
	return bytes.Replace(data, []byte(old), []byte(new), 1)
}
