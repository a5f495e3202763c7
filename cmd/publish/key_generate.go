package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/incus-appliance/registry/internal/gitrepo"
	"github.com/incus-appliance/registry/internal/signing"
)

type keyGenerateCmd struct {
	File  string `arg:"" optional:"" name:"FILE" default:"${signing_key_file}" help:"Where to write the secret key (default: ${default}); never replaced, and refused inside a git work tree unless git ignores it."`
	Name  string `default:"Incus appliance registry" help:"The key's user ID name."`
	Email string `help:"The key's user ID e-mail address."`
}

func (c *keyGenerateCmd) Run(ctx context.Context, out *output) error {
	if err := refuseCommittable(ctx, c.File); err != nil {
		return err
	}
	passphrase := os.Getenv(signing.PassphraseEnv)
	armored, fpr, err := signing.Generate(c.Name, c.Email, []byte(passphrase), time.Now())
	if err != nil {
		return err
	}
	if err := signing.WriteSecretKeyFile(c.File, armored); err != nil {
		return err
	}
	if passphrase == "" {
		out.note("wrote the secret key to %s, without a passphrase (set %s to protect it)", c.File, signing.PassphraseEnv)
	} else {
		out.note("wrote the secret key to %s, protected by the passphrase in %s", c.File, signing.PassphraseEnv)
	}
	res := struct {
		Fingerprint signing.Fingerprint `json:"fingerprint"`
		File        string              `json:"file"`
	}{fpr, c.File}
	return out.result(res, func(w io.Writer) { fmt.Fprintln(w, fpr) })
}

// refuseCommittable refuses a secret key path that a `git add -A` would
// commit: inside a git work tree and not ignored there.
func refuseCommittable(ctx context.Context, path string) error {
	top, inTree, ignored, err := gitrepo.CheckIgnored(ctx, path)
	if err != nil {
		return fmt.Errorf("checking that %s stays out of git: %w", path, err)
	}
	if inTree && !ignored {
		return fmt.Errorf("refusing to write a secret key to %s: it is inside the git work tree %s and not git-ignored (add it to .gitignore, or write it outside the work tree)", path, top)
	}
	return nil
}
