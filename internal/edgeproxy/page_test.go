package edgeproxy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/catalog"
	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/filetest"
)

// pageRegistry writes a registry folder whose catalog has two appliances:
// web (two versions, two architectures, a description holding markup,
// custom metadata, a profile) and pgsql.
func pageRegistry(t *testing.T) string {
	t.Helper()
	c := catalog.New()
	ref := func(s string) catalog.FileRef {
		return catalog.FileRef{SHA256: digest.Of([]byte(s)), Size: int64(len(s)) * 1000}
	}
	add := func(name, arch, desc string, created time.Time, aliases []string, custom map[string]string, profiles map[string]catalog.FileRef) {
		img := catalog.Image{
			Name: name, Arch: arch, OS: "Debian", Release: "12", ReleaseTitle: "bookworm", Variant: "default",
			Description: desc, Created: created, Aliases: aliases, RootKind: catalog.RootSquashfs,
			Fingerprint: ref(name + arch + desc + created.String()).SHA256, Metadata: ref("m" + name), Root: ref("r" + name + created.String()),
			ApplianceVersion: "1.2", Custom: custom, Profiles: profiles,
		}
		if _, err := c.Add(img); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	evil := `Web <script>document.title="PWNED"</script><img src=x onerror="alert(1)"> & "quotes"`
	custom := map[string]string{"homepage": `https://example.org/?a=1&b=<2>`, "maintainer": "ops@example.org"}
	add("web", "amd64", "old web", t0, nil, custom, nil)
	add("web", "amd64", evil, t0.Add(48*time.Hour), []string{"www"}, custom, map[string]catalog.FileRef{"webprofile": ref("p")})
	add("web", "arm64", evil, t0.Add(48*time.Hour), []string{"www"}, custom, nil)
	add("pgsql", "amd64", "A database", t0, nil, map[string]string{"provides": "postgresql:5432"}, nil)
	add("rss", "amd64", "A feed reader", t0, nil, map[string]string{"requires": "db=postgresql >=1.1, <2; feeds=http (multiple)"}, nil)
	dir := t.TempDir()
	filetest.WriteTree(t, dir, map[string][]byte{catalog.IndexPath: catalog.BuildIndex(c.ProductKeys()).Marshal(), catalog.ImagesPath: c.Marshal()})
	return dir
}

// The catalog page at / lists every appliance with its description,
// architectures, aliases and the commands to copy; /appliance/NAME shows
// versions newest first, sizes, custom metadata, profiles. Every catalog
// string is escaped; nothing can run scripts.
func TestCatalogPage(t *testing.T) {
	p := startProxy(t, dirOrigin(t, pageRegistry(t)), func(c *Config) { c.RemoteName = "acme" })
	resp, body := p.do(t, "GET", "/")
	page := string(body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("GET /: %d %v", resp.StatusCode, resp.Header)
	}
	for _, want := range []string{
		"incus remote add acme " + p.URL + " --protocol simplestreams",
		"incus launch acme:web web-1", "incus launch acme:pgsql pgsql-1",
		`href="/appliance/web"`, `href="/appliance/pgsql"`, "A database",
		"Web &lt;script&gt;document.title=&#34;PWNED&#34;&lt;/script&gt;&lt;img src=x onerror=&#34;alert(1)&#34;&gt; &amp; &#34;quotes&#34;",
		"amd64 arm64", "www",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/ lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "<img", "onerror=\"", "javascript:"} {
		if strings.Contains(page, bad) {
			t.Errorf("/ holds %q: unescaped", bad)
		}
	}
	resp, body = p.do(t, "GET", "/appliance/web")
	page = string(body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /appliance/web: %d", resp.StatusCode)
	}
	newer, older := strings.Index(page, "20261103_100000"), strings.Index(page, "20261101_100000")
	if newer < 0 || older < 0 || newer > older {
		t.Errorf("versions not newest first (at %d and %d)", newer, older)
	}
	for _, want := range []string{
		"incus remote add acme " + p.URL + " --protocol simplestreams", "incus launch acme:web web-1",
		"homepage", "https://example.org/?a=1&amp;b=&lt;2&gt;", "ops@example.org", "webprofile",
		"1.2", "arm64", "(latest)", "old web",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/appliance/web lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "<img") {
		t.Error("/appliance/web holds unescaped markup")
	}
	if resp, _ = p.do(t, "GET", "/appliance/nope"); resp.StatusCode != 404 {
		t.Errorf("unknown appliance: %d", resp.StatusCode)
	}
	if resp, body = p.do(t, "HEAD", "/"); resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("HEAD /: %d", resp.StatusCode)
	}
}

// An appliance's relations are shown with the commands that wire them:
// what it provides (the pipe from its hook), what it requires (the
// interface, versions and the pipe into its hook), on its page; its
// requirements on the list too.
func TestCatalogPageShowsRelations(t *testing.T) {
	p := startProxy(t, dirOrigin(t, pageRegistry(t)), nil)
	_, body := p.do(t, "GET", "/appliance/rss")
	page := string(body)
	for _, want := range []string{
		"<h2>Relations</h2>", "<td>db</td><td>postgresql &gt;=1.1, &lt;2</td>", "feeds (any number)",
		"incus exec PROVIDER -- /usr/lib/appliance/provides/postgresql rss-1 | incus exec rss-1 -- /usr/lib/appliance/requires/db",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/appliance/rss lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<th>requires</th>") {
		t.Error("the relations are also in the metadata table")
	}
	_, body = p.do(t, "GET", "/appliance/pgsql")
	if page := string(body); !strings.Contains(page, `<code class="provides">postgresql</code> (port 5432)`) ||
		!strings.Contains(page, "incus exec pgsql-1 -- /usr/lib/appliance/provides/postgresql CONSUMER | incus exec CONSUMER -- /usr/lib/appliance/requires/RELATION") {
		t.Errorf("/appliance/pgsql:\n%s", page)
	}
	_, body = p.do(t, "GET", "/")
	if page := string(body); !strings.Contains(page, "Requires db (postgresql &gt;=1.1, &lt;2) feeds (http)") {
		t.Errorf("/ does not show rss's requirements:\n%s", page)
	}
}

// The page never echoes the request's Host header (it is served with
// Cache-Control public, and a shared cache would hand the forged name to
// everyone): the remote add line names the configured public URL.
// (Before this test, "Host: evil.example" put https://evil.example into
// the page.)
func TestCatalogPageUsesThePublicURL(t *testing.T) {
	dir := pageRegistry(t)
	p := startProxy(t, dirOrigin(t, dir), nil)
	for _, path := range []string{"/", "/appliance/web"} {
		_, body := p.do(t, "GET", path, "Host", "evil.example")
		if page := string(body); strings.Contains(page, "evil.example") || !strings.Contains(page, "incus remote add appliance "+p.URL+" ") {
			t.Errorf("%s with Host evil.example: %.400s", path, page)
		}
	}
	p2 := startProxy(t, dirOrigin(t, dir), func(c *Config) { c.PublicURL = "https://images.example.org/" })
	if _, body := p2.do(t, "GET", "/", "Host", "evil.example"); !strings.Contains(string(body), "incus remote add appliance https://images.example.org --protocol simplestreams") {
		t.Errorf("with PublicURL: %.400s", body)
	}
}

// A profile whose path is no registry key under images/ (a catalog some
// other tool wrote: "/evil.example/x" would render as href="//evil.example/x",
// a link to another site) is listed without a link.
func TestCatalogPageLinksOnlyRegistryPaths(t *testing.T) {
	dir := pageRegistry(t)
	file := filepath.Join(dir, catalog.ImagesPath)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	json.Unmarshal(b, &doc)
	n := 0
	for _, p := range doc["products"].(map[string]any) {
		for _, v := range p.(map[string]any)["versions"].(map[string]any) {
			for _, it := range v.(map[string]any)["items"].(map[string]any) {
				if it := it.(map[string]any); it["ftype"] == catalog.FTypeProfile {
					it["path"] = "/evil.example/x"
					n++
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no profile in the catalog")
	}
	b, _ = json.Marshal(doc)
	os.WriteFile(file, b, 0o644)
	p := startProxy(t, dirOrigin(t, dir), nil)
	_, body := p.do(t, "GET", "/appliance/web")
	page := string(body)
	if strings.Contains(page, "//evil.example") {
		t.Errorf("a link off the registry: %s", page[strings.Index(page, "evil.example")-40:][:80])
	}
	if !strings.Contains(page, "webprofile") {
		t.Error("the profile is not listed")
	}
}
