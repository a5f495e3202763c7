package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/gitrepo"
	"github.com/incus-appliance/registry/internal/signing"
	"github.com/incus-appliance/registry/internal/tooltest"
)

var fingerprintLine = regexp.MustCompile(`^[0-9A-F]{40}\n$`)

// TestKeyGenerateAndExport: a newcomer's key, with and without a
// passphrase: written 0600, its fingerprint printed; the exported public
// key (binary) is a keyring gpgv accepts a signature with, and the armoured
// one a keyring Verify accepts.
func TestKeyGenerateAndExport(t *testing.T) {
	for _, passphrase := range []string{"", "s3cret"} {
		t.Setenv(signing.PassphraseEnv, passphrase)
		dir := t.TempDir()
		file := filepath.Join(dir, "keys", "signing-key.asc")
		code, stdout, stderr := runPublish(t, "key", "generate", file, "--email", "ci@example.org")
		if code != 0 || !fingerprintLine.MatchString(stdout) {
			t.Fatalf("key generate = %d, %q, %q", code, stdout, stderr)
		}
		fpr := signing.Fingerprint(strings.TrimSpace(stdout))
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("secret key file: %v, %v; want mode 0600", fi, err)
		}
		if code, _, stderr := runPublish(t, "key", "generate", file); code != 1 || !strings.Contains(stderr, "exists") {
			t.Errorf("key generate over an existing key = %d, %q; want a refusal", code, stderr)
		}

		ring := filepath.Join(dir, "keyring.gpg")
		if code, _, stderr := runPublish(t, "key", "export", "--signing-key", file, "--binary", "-o", ring); code != 0 {
			t.Fatalf("key export --binary = %d, %q", code, stderr)
		}
		code, armored, stderr := runPublish(t, "key", "export", "--signing-key", file)
		if code != 0 || !strings.HasPrefix(armored, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
			t.Fatalf("key export = %d, %q, %q", code, armored, stderr)
		}
		kr, err := signing.ParseKeyring([]byte(armored))
		if err != nil || len(kr.Fingerprints()) != 1 || kr.Fingerprints()[0] != fpr {
			t.Fatalf("the armoured export: %v, %v; want the key %s", kr, err, fpr)
		}
		code, js, _ := runPublish(t, "key", "export", "--signing-key", file, "--json")
		var res struct {
			Fingerprint string `json:"fingerprint"`
			PublicKey   string `json:"public_key"`
		}
		if code != 0 || json.Unmarshal([]byte(js), &res) != nil || res.Fingerprint != string(fpr) || res.PublicKey != armored {
			t.Errorf("key export --json = %d, %q", code, js)
		}

		signer, err := signing.LoadSigner(file, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		signed, err := signer.Sign([]byte("{\n  \"format\": \"index:1.0\"\n}\n"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kr.Verify(signed, time.Now()); err != nil {
			t.Errorf("Verify with the exported key: %v", err)
		}
		gpgv := tooltest.Require(t, "gpgv")[0]
		doc := filepath.Join(dir, "index.sjson")
		if err := os.WriteFile(doc, signed, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(gpgv, "--keyring", ring, doc)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("gpgv --keyring <key export --binary>: %v\n%s", err, out)
		}
	}
}

// TestKeyGenerateRefusesCommittablePath: inside a git work tree, a secret
// key goes only to an ignored path; nothing is written otherwise.
func TestKeyGenerateRefusesCommittablePath(t *testing.T) {
	git := tooltest.Require(t, "git")[0]
	repo := t.TempDir()
	tooltest.Run(t, git, "-C", repo, "init", "-q")
	if err := os.WriteFile(filepath.Join(repo, ".gitignore"), []byte("/secrets/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(repo, "signing-key.asc"), filepath.Join(repo, "keys", "k.asc")} {
		code, _, stderr := runPublish(t, "key", "generate", p)
		if code != 1 || !strings.Contains(stderr, "not git-ignored") {
			t.Errorf("key generate %s = %d, %q; want a refusal", p, code, stderr)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s written anyway (%v)", p, err)
		}
	}
	ignored := filepath.Join(repo, "secrets", "signing-key.asc")
	if code, _, stderr := runPublish(t, "key", "generate", ignored); code != 0 {
		t.Errorf("key generate %s (ignored) = %d, %q", ignored, code, stderr)
	}
}

// TestSecretFoldersAreGitIgnored: every place the project writes private
// keys or credentials into by default is git-ignored, so that a
// newcomer's `git add -A` after `make demo` commits none of them.
func TestSecretFoldersAreGitIgnored(t *testing.T) {
	tooltest.Require(t, "git")
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skip("not a git checkout")
	}
	for _, p := range []string{
		"edgeproxy-state/selfsigned.key", // edgeproxy's default --state-dir
		"edgeproxy-state/acme/acme_account+key",
		defaultKeyFile,                // publish key generate
		".build/minio/env",            // make minio-start: MinIO's credentials
		"terraform/terraform.tfstate", // terraform apply's local state
		"terraform/.terraform/x",
	} {
		_, inTree, ignored, err := gitrepo.CheckIgnored(context.Background(), filepath.Join(root, p))
		if err != nil || !inTree || !ignored {
			t.Errorf("%s: in work tree %v, ignored %v, %v; want it git-ignored (.gitignore)", p, inTree, ignored, err)
		}
	}
}
