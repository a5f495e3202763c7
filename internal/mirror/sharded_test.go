package mirror

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// testShards is the number of catalog files of the registries the tests
// mirror into: 1, or MIRROR_TEST_SHARDS in the run TestShardedSuite starts.
var testShards = func() int {
	n, _ := strconv.Atoi(os.Getenv("MIRROR_TEST_SHARDS"))
	return max(n, 1)
}()

// TestShardedSuite runs every test of this package again mirroring into
// registries of 4 catalog files (catalog/shard.go).
func TestShardedSuite(t *testing.T) {
	if testShards > 1 {
		t.Skip("this is the sharded run")
	}
	cmd := exec.Command(os.Args[0], "-test.count=1", "-test.timeout=20m")
	cmd.Env = append(os.Environ(), "MIRROR_TEST_SHARDS=4")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the suite with 4 catalog files failed: %v\n%s", err, out)
	}
}
