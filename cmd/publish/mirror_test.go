package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
	"github.com/incus-appliance/registry/internal/store/dirstore/dirstoretest"
)

// resignAt re-signs the registry in dir with key as of at, valid for
// validity (publish sign on a clock of the test's choosing).
func resignAt(t *testing.T, dir string, key *signingtest.Key, at time.Time, validity time.Duration) {
	t.Helper()
	r := &registry.Registry{Store: dirstoretest.Open(t, dir), Signing: &registry.Signing{Signer: key.Signer, Validity: validity}, Now: func() time.Time { return at }}
	if _, err := r.Sign(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestMirrorKeyringSigningKey: mirror --keyring takes a signed registry
// through its signatures and, with --signing-key, re-signs the copy with
// its own key: gpgv and the reference client (sstream-query --keyring)
// accept every signed document of the copy with the mirror's key. A
// tampered source, a source signed by a key not in --keyring, and an
// expired source are refused with one line, the destination's bytes
// unchanged.
func TestMirrorKeyringSigningKey(t *testing.T) {
	ref := signingtest.NewReference(t)
	srcKey, own := signingtest.NewKey(t, "source"), signingtest.NewKey(t, "mirror")
	srcKeyring, ownKeyring := signingtest.WriteKeyring(t, srcKey), signingtest.WriteKeyring(t, own)
	ownSecret := signingtest.WriteSecret(t, own)
	src := filepath.Join(t.TempDir(), "source")
	mustRun(t, append(sampleArgs(t, "nginx", signT0), "--bucket", src, "--signing-key", signingtest.WriteSecret(t, srcKey), "--no-delta")...)
	dest := filepath.Join(t.TempDir(), "mirror")
	out := mustRun(t, "mirror", src, "--keyring", srcKeyring, "--signing-key", ownSecret, "--bucket", dest)
	if !strings.Contains(out, "signed by "+string(srcKey.Fingerprint)) {
		t.Errorf("mirror output does not name the source's key:\n%s", out)
	}

	sjson, _ := filepath.Glob(filepath.Join(dest, "streams", "v1", "*.sjson"))
	if len(sjson) != 2 {
		t.Fatalf("%d .sjson files in the mirror, want 2: %v", len(sjson), sjson)
	}
	for _, f := range sjson {
		if out, err := ref.GPGV(ownKeyring, f); err != nil {
			t.Errorf("gpgv --keyring (the mirror's key) rejects %s: %v\n%s", f, err, out)
		}
		if _, err := ref.GPGV(srcKeyring, f); err == nil {
			t.Errorf("gpgv accepts %s with the source's key: the mirror did not re-sign it", f)
		}
	}
	index := filepath.Join(dest, filepath.FromSlash(catalog.SignedIndexPath))
	out, err := ref.SStream("sstream-query", "--keyring", ownKeyring, "--output-format", "%(product_name)s %(ftype)s", index)
	if err != nil || !strings.Contains(out, "nginx:amd64 squashfs") {
		t.Fatalf("sstream-query --keyring on the mirror: %v\n%s", err, out)
	}
	if rep, code := verifyJSON(t, "--bucket", dest, "--keyring", ownKeyring); code != 0 || len(rep.Signed) != 2 {
		t.Errorf("verify --keyring (the mirror's key) = %d: %+v", code, rep)
	}

	tampered := filetest.Copy(t, src)
	sj := filepath.Join(tampered, "streams", "v1", "images.sjson")
	b, _ := os.ReadFile(sj)
	if err := os.WriteFile(sj, []byte(strings.Replace(string(b), `"arch": "amd64"`, `"arch": "arm64"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	expired := filetest.Copy(t, src)
	resignAt(t, expired, srcKey, time.Now().Add(-2*time.Hour), time.Hour)
	stranger := signingtest.WriteKeyring(t, signingtest.NewKey(t, "stranger"))
	for _, c := range []struct {
		name, source, keyring, want string
	}{
		{"tampered", tampered, srcKeyring, "bad signature"},
		{"unknown key", src, stranger, "signed by a key not in the keyring"},
		{"expired", expired, srcKeyring, "expired at"},
		{"unsigned", copyDirWithout(t, src, catalog.SignedIndexPath), srcKeyring, "not signed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantRefused(t, dest, c.want, "mirror", c.source, "--keyring", c.keyring, "--signing-key", ownSecret, "--bucket", dest)
		})
	}
}

// copyDirWithout copies the folder src without the file at path (a
// slash-separated path under it).
func copyDirWithout(t *testing.T, src, path string) string {
	t.Helper()
	dst := filetest.Copy(t, src)
	if err := os.Remove(filepath.Join(dst, filepath.FromSlash(path))); err != nil {
		t.Fatal(err)
	}
	return dst
}
