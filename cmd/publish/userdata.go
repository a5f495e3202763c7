package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/incus-appliance/registry/internal/cloudinit"
)

type checkUserDataCmd struct {
	File string `arg:"" name:"FILE" help:"cloud-init user-data for a cloud variant (incus launch ... --config cloud-init.user-data=\"$(cat FILE)\"); - reads stdin."`
}

func (c *checkUserDataCmd) Run(ctx context.Context, out *output) error {
	var data []byte
	var err error
	if c.File == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(c.File)
	}
	if err != nil {
		return err
	}
	if err := cloudinit.CheckUserData(data); err != nil {
		return fmt.Errorf("%s: %w", c.File, err)
	}
	return out.result(map[string]any{"file": c.File, "ok": true}, func(w io.Writer) {
		fmt.Fprintf(w, "%s: valid cloud-init user-data\n", c.File)
	})
}
