package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/signing/signingtest"
)

// indexSerial is the registry_serial of reg's index.json (0 while it has
// none).
func indexSerial(reg string) int64 {
	data, err := os.ReadFile(filepath.Join(reg, filepath.FromSlash(catalog.IndexPath)))
	if err != nil {
		return 0
	}
	st, _ := catalog.ReadStamp(data)
	return st.Serial
}

// 8 publish processes with --signing-key started at once against one
// registry folder, half of them new versions of one appliance (one catalog
// file for all), and four SIGKILLed as the index's serial passes 4, 6, 8
// and 10 (if still running): once quiet, every .sjson still verifies
// (gpgv), and verify --keyring finds nothing but a half-signed registry;
// publish sign repairs that, after which verify --keyring passes and the
// reference client lists every image. With one catalog file and with four.
func TestSigningPublishProcessesKilled(t *testing.T) {
	ref := signingtest.NewReference(t)
	key := signingtest.NewKey(t, "ci")
	secret := signingtest.WriteSecret(t, key)
	keyring := signingtest.WriteKeyring(t, key)
	for _, shards := range []string{"1", "4"} {
		t.Run(shards+" files", func(t *testing.T) {
			reg := filepath.Join(t.TempDir(), "registry")
			env := []string{"PUBLISH_SIGNING_KEY=" + secret}
			meta, root := sampleImage(t, "nginx", t0, 1)
			mustPublishEnv(t, env, "nginx", "--bucket", reg, "--metadata", meta, "--rootfs", root, "--no-delta", "--catalog-shards", shards)
			base := indexSerial(reg)
			var cmds []*exec.Cmd
			for i := range 8 {
				name := fmt.Sprintf("app%d", i)
				if i%2 == 0 {
					name = "nginx"
				}
				meta, root := sampleImage(t, name, t0.Add(time.Duration(i+1)*time.Hour), int64(10+i))
				cmd := exec.Command(publishBin, name, "--bucket", reg, "--metadata", meta, "--rootfs", root, "--no-delta", "--quiet")
				cmd.Env = append(os.Environ(), env...)
				cmds = append(cmds, cmd)
			}
			var wg sync.WaitGroup
			errs := make([]error, len(cmds))
			for i, cmd := range cmds {
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				wg.Go(func() { errs[i] = cmd.Wait() })
			}
			killed := killAsSerialPasses(reg, base, cmds[:4])
			wg.Wait()
			for i, err := range errs {
				if err != nil && !killed[i] {
					t.Errorf("publisher %d: %v", i, err)
				}
			}
			t.Logf("%d of 8 publishers killed", len(killed))
			sjson, _ := filepath.Glob(filepath.Join(reg, "streams", "v1", "*.sjson"))
			for _, f := range sjson {
				if out, err := ref.GPGV(keyring, f); err != nil {
					t.Errorf("gpgv rejects %s after the kills: %v\n%s", f, err, out)
				}
			}
			if r := publish(t, "verify", "--bucket", reg, "--keyring", keyring, "--no-files"); r.code != 0 {
				for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
					if strings.HasPrefix(line, "PROBLEM") && !strings.Contains(line, "half-signed") {
						t.Errorf("after the kills: %s", line)
					}
				}
			}
			mustPublishEnv(t, env, "sign", "--bucket", reg)
			mustPublish(t, "verify", "--bucket", reg, "--keyring", keyring)
			index := filepath.Join(reg, filepath.FromSlash(catalog.SignedIndexPath))
			out, err := ref.SStream("sstream-query", "--keyring", keyring, "--output-format", "%(product_name)s", index)
			if err != nil {
				t.Fatalf("sstream-query: %v\n%s", err, out)
			}
			for _, e := range list(t, reg) {
				if !strings.Contains(out, e.Product) {
					t.Errorf("sstream-query does not list %s:\n%s", e.Product, out)
				}
			}
		})
	}
}

// killAsSerialPasses SIGKILLs victim i once reg's index serial has passed
// base+4+2i, while the victim still runs; it returns the victims killed.
func killAsSerialPasses(reg string, base int64, victims []*exec.Cmd) map[int]bool {
	killed := map[int]bool{}
	for i, cmd := range victims {
		for indexSerial(reg) < base+4+2*int64(i) && !exited(cmd) {
			time.Sleep(2 * time.Millisecond) // polling the registry, not synchronising
		}
		if !exited(cmd) && cmd.Process.Signal(syscall.SIGKILL) == nil {
			killed[i] = true
		}
	}
	return killed
}

// exited reports whether cmd's process has ended (Wait runs elsewhere).
func exited(cmd *exec.Cmd) bool {
	return cmd.Process.Signal(syscall.Signal(0)) != nil
}
