package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/appliance"
	"github.com/incus-appliance/registry/internal/filetest"
)

// The stack of issue 23 (make test-stack): postgresql, miniflux and
// tls-proxy built and published into a registry served by edgeproxy;
// the Ansible role (Debian 13's ansible, scripts/install-ansible.sh)
// launches tls-proxy -> miniflux -> postgresql from it, providers first,
// wires both relations through the hooks and waits for every health
// check. Then:
//   - HTTPS through the TLS proxy reaches miniflux, which answers from the
//     database: a category made through the proxy is read back through
//     it, and is a row of the postgresql instance's database;
//   - a second run of the play changes nothing;
//   - the README's pipe wires a second pair of instances the same way (a
//     consumer launched alone waits cleanly for it; wired again, nothing
//     changes).
func TestStackThroughAnsible(t *testing.T) {
	requireAsked(t, "REGISTRY_LAUNCH", "stack",
		"set REGISTRY_LAUNCH=stack (make test-stack) to build, publish and launch the stack",
		"the stack test needs root (distrobuilder, incusd, the Ansible root)")
	requireTool(t, "distrobuilder")
	repo := repoRoot(t)
	playbook := filepath.Join(repo, "scripts", "ansible-playbook.sh")
	root := filepath.Join(repo, "appliances")
	buildDir := sharedBuilds()
	reg := filepath.Join(t.TempDir(), "registry")
	apps := map[string]*appliance.Appliance{}
	took := stopwatch()
	for _, name := range []string{"postgresql", "miniflux", "tls-proxy"} {
		buildShared(t, name, "default") // made by make test-stack before the lock: nothing to do
		mustPublish(t, name, "--bucket", reg, "--build-dir", buildDir, "--appliances", root)
		a, err := appliance.Load(root, name)
		if err != nil {
			t.Fatal(err)
		}
		apps[name] = a
	}
	t.Logf("stack: built and published in %s", took())
	url, cert := runEdgeproxy(t, nil, "--bucket", reg)
	incusDaemon(t)
	incus := newClient(t, "incus", cert)

	vars := filepath.Join(t.TempDir(), "stack.yml")
	filetest.Write(t, vars, fmt.Appendf(nil, `appliance_stack_remote: {name: appliance, url: %q, certificate: %q}
appliance_stack:
  db: {appliance: postgresql}
  rss: {appliance: miniflux, relations: {db: db}}
  proxy: {appliance: tls-proxy, relations: {upstream: rss}}
`, url, cert))
	play := func(what string) (changed int) {
		t.Helper()
		cmd := exec.Command(playbook, "stack.yml", "-e", "@"+vars)
		cmd.Dir = filepath.Join(repo, "ansible")
		cmd.Env = append(os.Environ(), "INCUS_CONF="+filepath.Join(incus.home, ".config/incus"), "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0")
		took := stopwatch()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: ansible-playbook: %v\n%s", what, err, out)
		}
		m := regexp.MustCompile(`localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`).FindSubmatch(out)
		if m == nil || string(m[3]) != "0" || string(m[4]) != "0" {
			t.Fatalf("%s: no clean play recap:\n%s", what, out)
		}
		changed, _ = strconv.Atoi(string(m[2]))
		t.Logf("%s: ansible-playbook in %s: %s", what, took(), m[0])
		if changed > 0 {
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, "changed:") || strings.HasPrefix(l, "TASK [") {
					t.Log("  " + l)
				}
			}
		}
		return changed
	}
	if play("first run") == 0 {
		t.Fatal("the first run changed nothing")
	}
	for inst, name := range map[string]string{"db": "postgresql", "rss": "miniflux", "proxy": "tls-proxy"} {
		healthy(t, incus, inst, apps[name])
	}
	checkThroughProxy(t, incus, "proxy", "rss", "db")
	if n := play("second run"); n != 0 {
		t.Errorf("the second run changed %d task(s)", n)
	}

	t.Run("the README's pipe", func(t *testing.T) {
		incus.run(t, "launch", "appliance:postgresql", "db2")
		incus.run(t, "launch", "appliance:miniflux", "rss2")
		healthy(t, incus, "db2", apps["postgresql"])
		waitingForRelation(t, incus, "rss2", apps["miniflux"])
		healthy(t, incus, "rss2", apps["miniflux"]) // unwired: it says it waits
		p, r := apps["postgresql"].Provides[0], apps["miniflux"].Requires[0]
		if got := wirePipe(t, incus, "db2", p, "rss2", r); !strings.HasPrefix(got, "db: configured") {
			t.Errorf("the pipe: %q", got)
		}
		healthy(t, incus, "rss2", apps["miniflux"])
		if got := wirePipe(t, incus, "db2", p, "rss2", r); got != "db: unchanged" {
			t.Errorf("the pipe again: %q, want db: unchanged", got)
		}
		// miniflux answers from db2's database: the admin it made there.
		if got := execIn(t, incus, "db2", "runuser", "-u", "postgres", "--", "psql", "-X", "-d", "rss2", "-tAc", "select username from users"); strings.TrimSpace(got) != "admin" {
			t.Errorf("db2's rss2 database holds users %q", got)
		}
	})
}

// checkThroughProxy makes a category through the TLS proxy, reads it back
// through it, and finds it in the postgresql instance's database: an
// HTTPS page that miniflux read from that database.
func checkThroughProxy(t *testing.T, c *client, proxy, app, db string) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(execIn(t, c, proxy, "cat", "/etc/haproxy/certs/appliance.crt"))) {
		t.Fatal("the proxy's certificate does not parse")
	}
	// The certificate names tls-proxy.local (and the instance name): the
	// request goes to the proxy's address under that name.
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "tls-proxy.local"}}}
	base := "https://" + instanceIPv4(t, c, proxy)
	password := strings.TrimSpace(execIn(t, c, app, "cat", "/etc/miniflux/admin-password"))
	do := func(method, path string, body []byte) string {
		t.Helper()
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("admin", password)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s through the proxy: %v", method, path, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 || resp.TLS == nil {
			t.Fatalf("%s %s through the proxy: %s %s", method, path, resp.Status, data)
		}
		return string(data)
	}
	nonce := make([]byte, 6)
	rand.Read(nonce)
	title := "stack-" + hex.EncodeToString(nonce)
	made, _ := json.Marshal(map[string]string{"title": title})
	do("POST", "/v1/categories", made)
	if got := do("GET", "/v1/categories", nil); !strings.Contains(got, `"title":"`+title+`"`) {
		t.Errorf("GET /v1/categories through the proxy lacks %s: %s", title, got)
	}
	if got := do("GET", "/v1/me", nil); !strings.Contains(got, `"username":"admin"`) {
		t.Errorf("GET /v1/me through the proxy: %s", got)
	}
	if got := execIn(t, c, db, "runuser", "-u", "postgres", "--", "psql", "-X", "-d", app, "-tAc", "select title from categories"); !strings.Contains(got, title) {
		t.Errorf("the category made through the proxy is not in %s's database %s: %q", db, app, got)
	}
	t.Logf("HTTPS through %s: miniflux on %s made and read category %s, a row of %s's database", proxy, app, title, db)
}
