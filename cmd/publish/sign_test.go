package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/signing"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
)

// TestSignedCommands: publish, remove, prune and mirror with
// --signing-key (or PUBLISH_SIGNING_KEY, a file or the armoured key
// itself) sign the catalog; verify --keyring (armoured or binary) checks
// it; publish sign gives every document a new serial, and with a new key
// rotates the registry to it (a keyring of both keys accepts it throughout,
// the new key alone only once signed with it, the old key alone no more).
func TestSignedCommands(t *testing.T) {
	key := signingtest.NewKey(t, "ci")
	keyFile := signingtest.WriteSecret(t, key)
	armoured := filepath.Join(t.TempDir(), "keyring.asc")
	if err := os.WriteFile(armoured, key.PublicArmored, 0o644); err != nil {
		t.Fatal(err)
	}
	binary := signingtest.WriteKeyring(t, key)
	reg := filepath.Join(t.TempDir(), "registry")
	mustRun(t, append(sampleArgs(t, "nginx", signT0), "--bucket", reg, "--signing-key", keyFile, "--no-delta")...)
	t.Setenv("PUBLISH_SIGNING_KEY", string(key.Secret))
	mustRun(t, append(sampleArgs(t, "redis", signT0), "--bucket", reg, "--signature-validity", "48h")...)
	mustRun(t, append(sampleArgs(t, "nginx", signT0.Add(time.Hour)), "--bucket", reg, "--no-delta")...)
	t.Setenv("PUBLISH_SIGNING_KEY", keyFile)
	mustRun(t, "remove", "redis", "--bucket", reg)
	mustRun(t, "prune", "--keep", "1", "--grace", "2h", "--bucket", reg)
	mirror := filepath.Join(t.TempDir(), "mirror")
	mustRun(t, "mirror", reg, "--bucket", mirror)
	for _, dir := range []string{reg, mirror} {
		for _, kr := range []string{armoured, binary} {
			rep, code := verifyJSON(t, "--bucket", dir, "--keyring", kr)
			if code != 0 || len(rep.Signed) != 2 {
				t.Fatalf("verify %s --keyring %s = %d: %+v", dir, kr, code, rep)
			}
		}
	}
	before, _ := verifyJSON(t, "--bucket", reg, "--keyring", binary)
	var res registry.SignResult
	if err := json.Unmarshal([]byte(mustRun(t, "sign", "--bucket", reg, "--json")), &res); err != nil {
		t.Fatal(err)
	}
	after, _ := verifyJSON(t, "--bucket", reg, "--keyring", binary)
	for i, d := range after.Signed {
		if d.Serial <= before.Signed[i].Serial || d.Status != "ok" {
			t.Errorf("after publish sign: %+v, was %+v", d, before.Signed[i])
		}
	}
	if res.Signer != string(key.Fingerprint) || len(res.Files) != 2 {
		t.Errorf("sign result %+v", res)
	}
	stranger := signingtest.WriteKeyring(t, signingtest.NewKey(t, "stranger"))
	if rep, code := verifyJSON(t, "--bucket", reg, "--keyring", stranger); code != 1 || rep.Signed[0].Status != "unknown-key" {
		t.Errorf("verify with a stranger's keyring = %d, %+v", code, rep.Signed)
	}

	// Rotation: publish sign with the new key; a keyring of both keys
	// accepts the registry before and after, the new key alone only after.
	next := signingtest.NewKey(t, "next")
	nextFile, nextOnly, both := signingtest.WriteSecret(t, next), signingtest.WriteKeyring(t, next), signingtest.WriteKeyring(t, key, next)
	if rep, code := verifyJSON(t, "--bucket", reg, "--keyring", nextOnly); code != 1 || rep.Signed[0].Status != "unknown-key" {
		t.Errorf("verify with the new key alone before publish sign = %d, %+v", code, rep.Signed)
	}
	for _, signer := range []string{keyFile, nextFile} {
		mustRun(t, "sign", "--bucket", reg, "--signing-key", signer)
		if rep, code := verifyJSON(t, "--bucket", reg, "--keyring", both); code != 0 || len(rep.Signed) != 2 {
			t.Errorf("verify with both keys after publish sign --signing-key %s = %d, %+v", signer, code, rep.Signed)
		}
	}
	if rep, code := verifyJSON(t, "--bucket", reg, "--keyring", nextOnly); code != 0 || rep.Signed[0].Signer != string(next.Fingerprint) {
		t.Errorf("verify with the new key alone after publish sign with it = %d, %+v", code, rep.Signed)
	}
	if rep, code := verifyJSON(t, "--bucket", reg, "--keyring", binary); code != 1 || rep.Signed[0].Status != "unknown-key" {
		t.Errorf("verify with the old key alone after the rotation = %d, %+v", code, rep.Signed)
	}
}

// TestSignedBadInput: each is refused with one line on stderr, and the
// registry's bytes stay as they were: a change without the key of a signed
// registry (publish, remove, prune, mirror into it, sign), a wrong or
// missing passphrase, a public key given as the signing key, a missing key
// file, a validity that is not positive.
func TestSignedBadInput(t *testing.T) {
	t.Setenv("PUBLISH_SIGNING_KEY", "")
	t.Setenv(signing.PassphraseEnv, "")
	key := signingtest.NewKey(t, "ci")
	keyFile := signingtest.WriteSecret(t, key)
	locked := filepath.Join(t.TempDir(), "locked.asc")
	armored, _, err := signing.Generate("locked", "", []byte("right"), signingtest.KeyTime)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(locked, armored, 0o600); err != nil {
		t.Fatal(err)
	}
	public := filepath.Join(t.TempDir(), "public.asc")
	if err := os.WriteFile(public, key.PublicArmored, 0o644); err != nil {
		t.Fatal(err)
	}
	reg := filepath.Join(t.TempDir(), "registry")
	mustRun(t, append(sampleArgs(t, "nginx", signT0), "--bucket", reg, "--signing-key", keyFile, "--no-delta")...)
	mustRun(t, append(sampleArgs(t, "nginx", signT0.Add(time.Hour)), "--bucket", reg, "--signing-key", keyFile, "--no-delta")...)
	other := filepath.Join(t.TempDir(), "other")
	mustRun(t, append(sampleArgs(t, "redis", signT0), "--bucket", other)...)
	next := sampleArgs(t, "nginx", signT0.Add(2*time.Hour))

	cases := []struct {
		name       string
		args       []string
		passphrase string
		want       string
	}{
		{"publish without the key", append(next, "--no-delta"), "", "PUBLISH_SIGNING_KEY"},
		{"remove without the key", []string{"remove", "nginx"}, "", "--signing-key"},
		{"prune without the key", []string{"prune", "--keep", "1"}, "", "--signing-key"},
		{"mirror without the key", []string{"mirror", other}, "", "--signing-key"},
		{"sign without the key", []string{"sign"}, "", "--signing-key"},
		{"wrong passphrase", append(next, "--signing-key", locked), "wrong", "wrong passphrase"},
		{"no passphrase", []string{"sign", "--signing-key", locked}, "", signing.PassphraseEnv},
		{"a public key", []string{"remove", "nginx", "--signing-key", public}, "", "secret key"},
		{"no such key file", []string{"sign", "--signing-key", filepath.Join(reg, "nope.asc")}, "", "no such file"},
		{"zero validity", []string{"sign", "--signing-key", keyFile, "--signature-validity", "0s"}, "", "--signature-validity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(signing.PassphraseEnv, c.passphrase)
			wantRefused(t, reg, c.want, append(c.args, "--bucket", reg)...)
		})
	}
	if _, err := os.Stat(filepath.Join(reg, filepath.FromSlash(catalog.SignedIndexPath))); err != nil {
		t.Fatal(err)
	}
}
