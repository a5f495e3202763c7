package mirror

import (
	"testing"

	"github.com/incus-appliance/registry/internal/suitetest"
)

// testShards is the number of catalog files of the registries the tests
// mirror into: 1, or MIRROR_TEST_SHARDS in the run TestShardedSuite starts.
var testShards = suitetest.Count("MIRROR_TEST_SHARDS")

// TestShardedSuite runs every test of this package again mirroring into
// registries of 4 catalog files (catalog/layout.go).
func TestShardedSuite(t *testing.T) {
	suitetest.RunAgain(t, "MIRROR_TEST_SHARDS", "4")
}
