package builder

import (
	"context"
	"fmt"
	"strings"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/debian"
)

// Archive tells the newest package versions a Debian archive offers
// (debian.Archive; a fake in tests).
type Archive interface {
	Newest(ctx context.Context, sources []debian.Source, arch string) (debian.Packages, error)
}

// Staleness says whether an appliance's build for one architecture is
// out of date, and why.
type Staleness struct {
	// Rebuild is true when a new build is due.
	Rebuild bool `json:"rebuild"`
	// Force is true when the inputs did not change but a rebuild is due
	// anyway (package updates): Container must be forced.
	Force bool `json:"force"`
	// Reasons say why, one line each ("never built", "inputs changed",
	// "3 package updates: ...").
	Reasons []string `json:"reasons,omitempty"`
	// Upgrades are the installed packages the archive has newer versions of.
	Upgrades []debian.Upgrade `json:"upgrades,omitempty"`
}

// CheckStale compares the build of t with the appliance's current inputs
// (built with opts) and, when archive is not nil, the packages the build
// recorded with the newest versions in the archive the image uses —
// without building anything.
func CheckStale(ctx context.Context, a *appliance.Appliance, t Target, opts Options, archive Archive) (*Staleness, error) {
	st := &Staleness{}
	if t.built() != nil {
		st.Rebuild, st.Reasons = true, []string{"never built"}
		return st, nil
	}
	in, err := inputs(ctx, a, t, opts)
	if err != nil {
		return nil, err
	}
	dir := t.Dir()
	if !upToDate(t, in.hash) {
		st.Rebuild, st.Reasons = true, []string{"inputs changed (appliance folder, distrobuilder version or compression)"}
		return st, nil
	}
	if due, err := propertiesDue(a, t); err != nil || due != nil {
		// Container rewrites the metadata tarball, keeping the root.
		st.Rebuild, st.Reasons = true, []string{"image properties out of date (provides, requires): the metadata is written again"}
		return st, err
	}
	if archive == nil {
		return st, nil
	}
	installed, err := installedPackages(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Label(), err)
	}
	if installed == nil {
		st.Rebuild, st.Force, st.Reasons = true, true, []string{"the last build recorded no package list"}
		return st, nil
	}
	sources, err := aptSources(dir)
	if err != nil {
		return nil, err
	}
	newest, err := archive.Newest(ctx, sources, t.Arch)
	if err != nil {
		return nil, fmt.Errorf("%s: checking package updates: %w", t.Label(), err)
	}
	st.Upgrades = debian.Upgrades(installed, newest)
	if len(st.Upgrades) > 0 {
		st.Rebuild, st.Force = true, true
		st.Reasons = []string{fmt.Sprintf("%d package update(s): %s", len(st.Upgrades), upgradeList(st.Upgrades, 5))}
	}
	return st, nil
}

func upgradeList(ups []debian.Upgrade, max int) string {
	var s []string
	for i, u := range ups {
		if i == max {
			s = append(s, fmt.Sprintf("and %d more", len(ups)-max))
			break
		}
		s = append(s, u.String())
	}
	return strings.Join(s, ", ")
}
