package dirstore_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/dirstore"
	"github.com/incus-appliance/registry/internal/store/dirstore/dirstoretest"
	"github.com/incus-appliance/registry/internal/store/storetest"
)

const (
	helperEnv     = "DIRSTORE_TEST_HELPER"
	helperRootEnv = "DIRSTORE_TEST_ROOT"
	counterKey    = "state/counter"
	procs         = 8
	procIncrement = 25
)

// TestCrossProcessIfMatch runs CAS increments of one counter from several
// processes at once: only the file lock and the content-based ETags
// coordinate them.
func TestCrossProcessIfMatch(t *testing.T) {
	root := t.TempDir()
	s := dirstoretest.Open(t, root)
	put(t, s, counterKey, []byte("0"), store.PutOptions{})

	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*bytes.Buffer, procs)
	for i := range cmds {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"=cas", helperRootEnv+"="+root)
		outs[i] = new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	wantInfo(t, s, counterKey, []byte(strconv.Itoa(procs*procIncrement)))
}

// TestHelperProcess is the child of TestCrossProcessIfMatch; it does
// nothing in a normal test run.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "cas" {
		t.Skip("helper process for TestCrossProcessIfMatch")
	}
	s, err := dirstore.Open(os.Getenv(helperRootEnv), dirstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	retries := 0
	for range procIncrement {
		r, err := storetest.Increment(t.Context(), s, counterKey)
		retries += r
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("pid %d: %d increments, %d lost races", os.Getpid(), procIncrement, retries)
}
