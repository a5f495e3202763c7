// Package dirstoretest opens registry folders for tests.
package dirstoretest

import (
	"testing"

	"github.com/incus-appliance/registry/internal/store/dirstore"
)

// Open opens the registry folder dir (which must exist) as a store that
// is closed when the test ends; an error fails the test.
func Open(t testing.TB, dir string) *dirstore.Store {
	t.Helper()
	s, err := dirstore.Open(dir, dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
