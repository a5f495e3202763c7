package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// 16 publish processes started at once against one registry folder: all 16
// images land and the registry verifies.
func TestSixteenPublishProcessesAtOnce(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry")
	const n = 16
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	want := map[string]bool{}
	for i := range n {
		meta, root := sampleImage(t, fmt.Sprintf("app%02d", i), t0, int64(i))
		want[fingerprintOf(t, meta, root)] = true
		cmd := exec.Command(publishBin, fmt.Sprintf("app%02d", i), "--bucket", reg, "--metadata", meta, "--rootfs", root, "--json")
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = cmd.Run()
		}()
	}
	close(start)
	wg.Wait()
	retries := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("publisher %d: %v\n%s", i, err, outs[i])
			continue
		}
		var res struct{ Retries int }
		json.Unmarshal([]byte(outs[i].String()), &res)
		retries += res.Retries
	}
	es := list(t, reg)
	for _, e := range es {
		delete(want, e.Fingerprint)
	}
	if len(es) != n || len(want) != 0 {
		t.Errorf("catalog has %d images, missing %d of the %d published", len(es), len(want), n)
	}
	mustPublish(t, "verify", "--bucket", reg)
	t.Logf("16 processes: %d catalog writes retried after losing a race", retries)
}

// Publishers and `prune --keep 1 --grace 0s` run side by side: every
// publish succeeds, the registry verifies after each round, and the newest
// version of every product is intact.
func TestPruneAlongsidePublishProcesses(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry")
	const publishers, versions = 3, 4
	stop := make(chan struct{})
	var pruneErr error
	var pruneWG sync.WaitGroup
	pruneWG.Add(1)
	go func() {
		defer pruneWG.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := publish(t, "prune", "--bucket", reg, "--keep", "1", "--grace", "0s", "--quiet")
			if r.code != 0 && !strings.Contains(r.stderr, "does not exist") {
				pruneErr = fmt.Errorf("prune: exit %d: %s", r.code, r.stderr)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan string, publishers*versions)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range versions {
				meta, root := sampleImage(t, fmt.Sprintf("app%d", p), t0.Add(time.Duration(v)*time.Hour), int64(p*100+v))
				if r := publish(t, fmt.Sprintf("app%d", p), "--bucket", reg, "--metadata", meta, "--rootfs", root); r.code != 0 {
					errs <- r.stderr
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	pruneWG.Wait()
	close(errs)
	for e := range errs {
		t.Error("publish:", e)
	}
	if pruneErr != nil {
		t.Fatal(pruneErr)
	}
	mustPublish(t, "verify", "--bucket", reg)
	latest := 0
	for _, e := range list(t, reg) {
		if e.Latest && e.Version == "20261120_150000" {
			latest++
		}
	}
	if latest != publishers {
		t.Errorf("%d products have their newest version listed, want %d", latest, publishers)
	}
}
