package main

import (
	"bytes"
	"errors"
	"io"
	"os"

	"github.com/incus-appliance/registry/internal/signing"
)

type keyExportCmd struct {
	SigningKey string `name:"signing-key" env:"PUBLISH_SIGNING_KEY" default:"${signing_key_file}" placeholder:"FILE" help:"The secret key: a file, or the armoured key itself (default: ${default}). No passphrase needed."`
	Binary     bool   `help:"Binary OpenPGP packets instead of ASCII armour: what gpgv (and the reference SimpleStreams client) read as --keyring."`
	Output     string `short:"o" placeholder:"FILE" help:"Write the public key to FILE instead of stdout."`
}

func (c *keyExportCmd) Run(out *output) error {
	if c.Binary && out.json {
		return usageError{errors.New("--binary and --json exclude each other")}
	}
	key, err := signing.ReadSecretKey(c.SigningKey)
	if err != nil {
		return err
	}
	var pub bytes.Buffer
	if err := key.ExportPublic(&pub, !c.Binary); err != nil {
		return err
	}
	if c.Output != "" {
		return os.WriteFile(c.Output, pub.Bytes(), 0o644)
	}
	res := struct {
		Fingerprint signing.Fingerprint `json:"fingerprint"`
		PublicKey   string              `json:"public_key"`
	}{key.Fingerprint(), pub.String()}
	return out.result(res, func(w io.Writer) { w.Write(pub.Bytes()) })
}
