package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/builder"
)

type validateCmd struct {
	Names []string `arg:"" optional:"" name:"NAME" help:"Appliances to check (default: all in --appliances)."`
}

// validateResult is one appliance's outcome.
type validateResult struct {
	Name     string   `json:"name"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems"`
}

func (c *validateCmd) Run(ctx context.Context, g *Globals, out *output) error {
	names := c.Names
	if len(names) == 0 {
		var err error
		if names, err = appliance.Names(g.Appliances); err != nil {
			return err
		}
		if len(names) == 0 {
			return fmt.Errorf("no appliances in %s", g.Appliances)
		}
	}
	db, dbErr := exec.LookPath("distrobuilder")
	var results []validateResult
	bad := 0
	for _, name := range names {
		r := validateResult{Name: name, Problems: []string{}}
		a, err := appliance.Load(g.Appliances, name)
		if err != nil {
			r.Problems = append(r.Problems, splitJoined(err)...)
		} else if dbErr == nil {
			// The merged template, as distrobuilder reads it.
			if err := builder.ValidateTemplate(ctx, a, db); err != nil {
				r.Problems = append(r.Problems, err.Error())
			}
		}
		r.OK = len(r.Problems) == 0
		if !r.OK {
			bad++
		}
		results = append(results, r)
	}
	err := out.result(results, func(w io.Writer) {
		for _, r := range results {
			if r.OK {
				fmt.Fprintf(w, "%s: ok\n", r.Name)
			}
			for _, p := range r.Problems {
				fmt.Fprintf(w, "%s: %s\n", r.Name, p)
			}
		}
		if dbErr != nil {
			fmt.Fprintln(w, "(distrobuilder not installed: templates not checked by it)")
		}
	})
	if err != nil {
		return err
	}
	if bad > 0 {
		return fmt.Errorf("validate: %d of %d appliances have problems (listed above)", bad, len(results))
	}
	return nil
}

// splitJoined lists the errors of an errors.Join.
func splitJoined(err error) []string {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}
