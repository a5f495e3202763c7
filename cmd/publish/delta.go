package main

import "fmt"

// deltaFlags choose the deltas a new version gets (publish NAME and
// publish release).
type deltaFlags struct {
	DeltaDepth int  `default:"${delta_depth}" placeholder:"K" help:"Make deltas from the last K versions of the product (xdelta3): a host that skipped up to K-1 releases still refreshes with a delta. A delta larger than half the root is left out."`
	NoDelta    bool `help:"Publish no delta (as --delta-depth 0; needs no xdelta3)."`
}

// depth is how many deltas a new version gets.
func (f deltaFlags) depth() (int, error) {
	if f.DeltaDepth < 0 {
		return 0, usageError{fmt.Errorf("--delta-depth must be 0 or more, got %d", f.DeltaDepth)}
	}
	if f.NoDelta {
		return 0, nil
	}
	return f.DeltaDepth, nil
}
