package edgeproxy

import (
	"bufio"
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
)

// With a token file, the registry exists only under /<token>/; tokens are
// never logged (their names are) and counted per name; a token removed
// from the file stops working within seconds; a broken file fails closed.
func TestPrivateRegistryTokens(t *testing.T) {
	const alice, bob = "Alice-0123456789abcdef", "bob_fedcba9876543210"
	dir, keys, data := catalogRegistry(t, 64<<10)
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFileAtomic(t, tokens, []byte("# access tokens\n"+alice+" alice\n\n"+bob+" bob\n"))
	var logs syncBuffer
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) {
		c.TokensFile = tokens
		c.Logger = jsonLog(&logs)
	})
	status := func(path string) int {
		resp, _ := p.do(t, "GET", path)
		return resp.StatusCode
	}
	for path, want := range map[string]int{
		"/" + alice + "/" + catalog.IndexPath:  200,
		"/" + alice + "/" + catalog.ImagesPath: 200,
		"/" + bob + "/" + keys[0]:              200,
		"/" + alice + "/":                      200,
		"/" + alice:                            200,
		"/" + catalog.IndexPath:                404,
		"/" + keys[0]:                          404,
		"/":                                    404,
		"/" + alice[:len(alice)-1] + "X/" + catalog.IndexPath:  404,
		"/" + strings.ToLower(alice) + "/" + catalog.IndexPath: 404,
		"/healthz": 200,
	} {
		if got := status(path); got != want {
			t.Errorf("GET %s: %d, want %d", path, got, want)
		}
	}
	resp, body := p.do(t, "GET", "/"+alice+"/"+keys[0])
	if resp.StatusCode != 200 || !bytes.Equal(body, data[0]) {
		t.Errorf("image under a token: %d", resp.StatusCode)
	}
	_, page := p.do(t, "GET", "/"+alice+"/")
	if !strings.Contains(string(page), "incus remote add appliance "+p.URL+"/"+alice+" --protocol simplestreams") {
		t.Errorf("the page under a token does not give the token URL:\n%s", page)
	}
	m := p.metrics(t)
	if metricValue(m, `edgeproxy_token_requests_total{token="alice"}`) < 6 || metricValue(m, `edgeproxy_token_requests_total{token="bob"}`) != 1 {
		t.Errorf("per-token counters: alice %v, bob %v", metricValue(m, `edgeproxy_token_requests_total{token="alice"}`), metricValue(m, `edgeproxy_token_requests_total{token="bob"}`))
	}
	if strings.Contains(m, alice) || strings.Contains(m, bob) {
		t.Error("a token appears in the metrics")
	}

	// Revocation: alice's line goes; within seconds her token is dead.
	writeFileAtomic(t, tokens, []byte(bob+" bob\n"))
	if !eventually(30*time.Second, func() bool { return status("/"+alice+"/"+catalog.IndexPath) == 404 }) {
		t.Error("a revoked token still works 30 s later")
	}
	if got := status("/" + bob + "/" + catalog.IndexPath); got != 200 {
		t.Errorf("bob after alice's revocation: %d", got)
	}
	// A file that no longer parses leaves no token valid.
	writeFileAtomic(t, tokens, []byte("short bob\n"))
	if !eventually(30*time.Second, func() bool { return status("/"+bob+"/"+catalog.IndexPath) == 404 }) {
		t.Error("a broken token file still lets bob in")
	}
	writeFileAtomic(t, tokens, []byte(bob+" bob\n"))
	if !eventually(30*time.Second, func() bool { return status("/"+bob+"/"+catalog.IndexPath) == 200 }) {
		t.Error("a repaired token file does not let bob in")
	}

	l := logs.String()
	if strings.Contains(l, alice) || strings.Contains(l, bob) || strings.Contains(l, alice[:len(alice)-1]) {
		t.Errorf("a token was logged:\n%s", l)
	}
	if !strings.Contains(l, `"token":"alice"`) || !strings.Contains(l, `"path":"/{alice}/streams/v1/index.json"`) {
		t.Errorf("the log does not name the token:\n%.2000s", l)
	}
}

func TestTokenFileErrors(t *testing.T) {
	for content, want := range map[string]string{
		"":                                     "holds no token",
		"# only a comment\n":                   "holds no token",
		"short\n":                              "at least 16 characters",
		"has/slash/0123456789abcdef x\n":       "at least 16 characters",
		"0123456789abcdef a b\n":               "want TOKEN [NAME]",
		"0123456789abcdef\n0123456789abcdef\n": "the same token twice",
		"0123456789abcdef n{ame}\n":            "a name is made of",
	} {
		file := filepath.Join(t.TempDir(), "tokens")
		writeFileAtomic(t, file, []byte(content))
		_, err := loadTokens(file, time.Second)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "0123456789abcdef") {
			t.Errorf("%q: %v, want an error saying %q (and not the token)", content, err, want)
		}
	}
}

// rawStatus sends one raw request line for target and returns the status.
func rawStatus(t *testing.T, p *proxy, method, target string) int {
	t.Helper()
	conn, err := trustedProxy{p, "127.0.0.1"}.dial(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(rq(method, target, "Connection: close"))); err != nil {
		t.Fatal(err)
	}
	status, _, _, _, err := readOne(bufio.NewReader(conn), method)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// Whether a token is valid cannot be told from the answer to a request
// that is refused anyway: a malformed path is 400 under a valid token, a
// wrong one or none alike, and a valid path nothing serves is 404 alike.
// (Before this test, "/<valid>/images/../x" was 400 and "/<wrong>/images/../x"
// 404: an oracle for guessing tokens.)
func TestTokenValidityIsNotTold(t *testing.T) {
	const valid, wrong = "Alice-0123456789abcdef", "Alice-0123456789abcdeX"
	dir, _, _ := catalogRegistry(t, 1024)
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFileAtomic(t, tokens, []byte(valid+" alice\n"))
	p := startProxy(t, dirOrigin(t, dir), func(c *Config) { c.TokensFile = tokens })
	for _, rest := range []string{
		"images/../streams/v1/index.json", "images/%2e%2e/x", "streams%2fv1/index.json", "streams/v1/index.json/",
		"images//x", "images/.hidden", `images\x`, "images/a\x7fb", "streams/v1/./index.json", "..",
		"etc/passwd", "streams/v2/x.json", "images/x", "streams/v1/nope.json", "appliance/nope",
	} {
		for _, method := range []string{"GET", "HEAD"} {
			a, b := rawStatus(t, p, method, "/"+valid+"/"+rest), rawStatus(t, p, method, "/"+wrong+"/"+rest)
			if a != b {
				t.Errorf("%s /<token>/%s: %d with the valid token, %d with a wrong one", method, rest, a, b)
			}
		}
	}
}
