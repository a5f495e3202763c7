package main

import (
	"context"
	"fmt"
	"io"

	"github.com/incus-appliance/registry/internal/registry"
	"github.com/incus-appliance/registry/internal/signing"
)

type verifyCmd struct {
	Deep    bool   `help:"Also decode every delta against its base with xdelta3 and check the result's fingerprint (downloads each delta and base root)."`
	Strict  bool   `help:"Treat warnings (an image without an lxd.tar.xz item, a version shell another tool left) as problems."`
	NoFiles bool   `name:"no-files" help:"Check the catalog, and each referenced file's presence and size from a listing, without reading files (quick on a large registry)."`
	Keyring string `placeholder:"FILE" help:"Check the signed catalog with these public keys (armoured or binary, any number): each .sjson signed by one of them, holding its .json, not expired, the index binding each product file."`
}

func (c *verifyCmd) Run(ctx context.Context, g *Globals, out *output) error {
	opts := registry.VerifyOptions{Deep: c.Deep, Strict: c.Strict, NoFiles: c.NoFiles}
	if c.Keyring != "" {
		var err error
		if opts.Keyring, err = signing.ReadKeyring(c.Keyring); err != nil {
			return err
		}
	}
	reg, closeStore, err := openRegistry(ctx, g)
	if err != nil {
		return err
	}
	defer closeStore()
	rep, err := reg.VerifyWith(ctx, opts)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	err = out.result(rep, func(w io.Writer) {
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "PROBLEM  %s\n", p)
		}
		for _, m := range rep.Warnings {
			fmt.Fprintf(w, "warning  %s\n", m)
		}
		for _, d := range rep.Signed {
			fmt.Fprintf(w, "signed   %s: %s (serial %d, by %s, until %s)\n", d.Path, d.Status, d.Serial, d.Signer, d.Expires)
		}
		for _, o := range rep.Orphans {
			fmt.Fprintf(w, "orphan   %s (%s): %s\n", o.Path, humanBytes(o.Size), o.Reason)
		}
		fmt.Fprintf(w, "%d images, %d files, %s checked: %d problems, %d orphan files\n",
			rep.Images, rep.Files, humanBytes(rep.BytesChecked), len(rep.Problems), len(rep.Orphans))
		if c.Deep {
			fmt.Fprintf(w, "%d deltas decoded and checked\n", rep.DeltasDecoded)
		}
	})
	if err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("verify: %d problems found in %s (first: %s)", len(rep.Problems), g.Bucket, rep.Problems[0])
	}
	return nil
}
