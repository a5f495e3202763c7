//go:build race

package registry

// raceEnabled: the race detector slows JSON work ~20x, so heavy tests scale down.
const raceEnabled = true
