package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/relations"
)

type listCmd struct{}

func (c *listCmd) Run(ctx context.Context, g *Globals, out *output) error {
	reg, closeStore, err := openRegistry(ctx, g)
	if err != nil {
		return err
	}
	defer closeStore()
	entries, err := reg.List(ctx)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []catalog.Entry{}
	}
	return out.result(entries, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ALIASES\tFINGERPRINT\tAPPLIANCE\tVARIANT\tVERSION\tARCH\tTYPE\tROOT\tSIZE\tPORTS\tVOLUMES\tTAGS\tPROVIDES\tREQUIRES\tSBOM\tDESCRIPTION")
		for _, e := range entries {
			aliases := strings.Join(e.Aliases, ",")
			if aliases == "" {
				aliases = "-"
			}
			appVersion := e.ApplianceVersion
			if appVersion == "" {
				appVersion = "-"
			}
			sbom := "-"
			if e.SBOM != "" {
				sbom = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", aliases, e.Fingerprint[:12], appVersion, orDash(e.Variant), e.Version, e.Arch, e.Type, e.Kind, humanBytes(e.Size),
				orDash(e.Custom["ports"]), orDash(e.Custom["volumes"]), orDash(e.Custom["tags"]),
				orDash(relations.FormatProvides(e.Provides)), orDash(relations.FormatRequires(e.Requires)), sbom, e.Description)
		}
		tw.Flush()
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
