package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/signing"
)

// signingFlags are the flags of every command that changes the catalog:
// with a key, each change is signed (registry.Signing).
type signingFlags struct {
	SigningKey        string        `name:"signing-key" env:"PUBLISH_SIGNING_KEY" placeholder:"FILE" help:"Sign the catalog with this OpenPGP secret key: a file, or the armoured key itself (passphrase from PUBLISH_SIGNING_KEY_PASSPHRASE). A signed registry refuses changes without it."`
	SignatureValidity time.Duration `name:"signature-validity" default:"168h" help:"How long each signed catalog document stays valid; re-sign (publish sign) well before then."`
}

// signing loads the key (nil without one), before anything is opened:
// a wrong key or passphrase changes nothing.
func (f signingFlags) signing() (*registry.Signing, error) {
	if f.SignatureValidity <= 0 {
		return nil, usageError{fmt.Errorf("--signature-validity must be positive, got %s", f.SignatureValidity)}
	}
	if f.SigningKey == "" {
		return nil, nil
	}
	signer, err := signing.LoadSigner(f.SigningKey, time.Now())
	if err != nil {
		return nil, err
	}
	return &registry.Signing{Signer: signer, Validity: f.SignatureValidity}, nil
}

type signCmd struct {
	signingFlags `embed:""`
}

func (c *signCmd) Run(ctx context.Context, g *Globals, out *output, log *slog.Logger) error {
	if c.SigningKey == "" {
		return usageError{errors.New("publish sign needs the signing key: --signing-key FILE or PUBLISH_SIGNING_KEY")}
	}
	reg, err := openChange(ctx, g, log, c.signingFlags, false)
	if err != nil {
		return err
	}
	defer reg.Close()
	res, err := reg.Sign(ctx)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	return reg.finish(ctx, "sign", true, func() error {
		return out.result(res, func(w io.Writer) {
			for _, f := range res.Files {
				fmt.Fprintf(w, "signed %s (serial %d)\n", f.Path, f.Serial)
			}
			fmt.Fprintf(w, "signed by %s, valid until %s\n", res.Signer, res.Expires)
		})
	})
}
