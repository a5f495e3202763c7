package catalog

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/filetest"
	"github.com/incus-appliance/registry/internal/osarch"
)

var t0 = time.Date(2026, 11, 25, 17, 35, 0, 0, time.UTC)

func hexOf(s string) string { return digest.Of([]byte(s)) }

// img returns a valid squashfs image whose digests derive from seed.
func img(name, arch string, created time.Time, seed string, aliases ...string) Image {
	return Image{
		Name: name, Arch: arch, OS: "debian", Release: "bookworm", Variant: name,
		Description: "Debian bookworm " + name, Created: created, Aliases: aliases,
		Fingerprint: hexOf("fp" + seed), RootKind: RootSquashfs,
		Metadata: FileRef{SHA256: hexOf("meta" + seed), Size: 688},
		Root:     FileRef{SHA256: hexOf("root" + seed), Size: 64 << 20},
	}
}

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	filetest.Golden(t, filepath.Join("testdata", name), got)
}

func mustAdd(t *testing.T, c *Catalog, im Image) AddResult {
	t.Helper()
	r, err := c.Add(im)
	if err != nil {
		t.Fatalf("Add(%s): %v", im.Name, err)
	}
	return r
}

func TestGoldenOperations(t *testing.T) {
	tests := []struct {
		name string
		ops  func(t *testing.T, c *Catalog)
	}{
		{"add-first.json", func(t *testing.T, c *Catalog) {
			mustAdd(t, c, img("nginx", "x86_64", t0, "n1"))
		}},
		{"add-second-version-and-alias.json", func(t *testing.T, c *Catalog) {
			mustAdd(t, c, img("nginx", "amd64", t0, "n1"))
			mustAdd(t, c, img("nginx", "amd64", t0.Add(24*time.Hour), "n2", "web"))
		}},
		{"two-products-two-arches.json", func(t *testing.T, c *Catalog) {
			mustAdd(t, c, img("nginx", "amd64", t0, "n1"))
			mustAdd(t, c, img("nginx", "aarch64", t0, "n1-arm"))
			mustAdd(t, c, img("redis", "amd64", t0, "r1", "cache"))
		}},
		{"root-kinds.json", func(t *testing.T, c *Catalog) {
			vm := img("vm", "amd64", t0, "vm")
			vm.RootKind = RootQCOW2
			tarRoot := img("tarroot", "amd64", t0, "tar")
			tarRoot.RootKind = RootTarXZ
			mustAdd(t, c, vm)
			mustAdd(t, c, tarRoot)
		}},
		{"remove-latest.json", func(t *testing.T, c *Catalog) {
			mustAdd(t, c, img("nginx", "amd64", t0, "n1"))
			mustAdd(t, c, img("nginx", "amd64", t0.Add(time.Hour), "n2"))
			if _, err := c.Remove("nginx", "", t0.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}},
		{"keep-newest.json", func(t *testing.T, c *Catalog) {
			for i, seed := range []string{"a", "b", "c"} {
				mustAdd(t, c, img("nginx", "amd64", t0.Add(time.Duration(i)*time.Hour), seed))
			}
			if _, err := c.KeepNewest(1, t0.Add(5*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}},
		{"state.json", func(t *testing.T, c *Catalog) {
			mustAdd(t, c, img("nginx", "amd64", t0, "n1"))
			if err := c.AddPending(Pending{ID: "p1", Product: "redis:amd64", Paths: img("redis", "amd64", t0, "r").Paths(), Expires: t0.Add(24 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
			c.RecordCommit("c1", t0)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkGolden(t, tt.name, tt.ops) })
	}
}

// checkGolden runs ops on a new catalog and compares its JSON with golden
// file name. The JSON must be deterministic, parseable and clean for
// clients: it returns the catalog parsed back.
func checkGolden(t *testing.T, name string, ops func(*testing.T, *Catalog)) *Catalog {
	t.Helper()
	c := New()
	ops(t, c)
	out := c.Marshal()
	golden(t, name, out)
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal()) = %v", err)
	}
	if string(back.Marshal()) != string(out) {
		t.Error("Marshal is not stable across a Parse round trip")
	}
	if p := back.Problems(); len(p) > 0 {
		t.Errorf("Problems() = %q", p)
	}
	return back
}

func TestAddRules(t *testing.T) {
	base := func(t *testing.T) *Catalog {
		c := New()
		mustAdd(t, c, img("nginx", "amd64", t0, "n1", "web"))
		mustAdd(t, c, img("redis", "arm64", t0, "r1", "cache"))
		return c
	}
	tests := []struct {
		name    string
		image   Image
		wantErr string // empty: must succeed
		changed bool
	}{
		{"identical again is a no-op", img("nginx", "amd64", t0, "n1", "web"), "", false},
		{"identical again with a new alias adds it", img("nginx", "amd64", t0, "n1", "www"), "", true},
		{"same version key, other content", img("nginx", "amd64", t0, "other"), "already published with different content", false},
		{"alias owned by another product", img("caddy", "amd64", t0, "c1", "web"), `alias "web" is already owned by product "nginx:amd64"`, false},
		{"main alias owned by another product", func() Image { i := img("web", "amd64", t0, "w1"); return i }(), `alias "web" is already owned by product "nginx:amd64"`, false},
		{"same alias on another arch is fine", img("caddy", "arm64", t0, "c1", "web"), "", true},
		{"fingerprint published elsewhere", img("copy", "amd64", t0, "n1"), "already published as product \"nginx:amd64\"", false},
		{"unknown arch", img("x", "sparc", t0, "x"), `unknown architecture "sparc"`, false},
		{"bad alias", img("x", "amd64", t0, "x", "a,b"), `alias "a,b" contains ','`, false},
		{"alias with arch suffix", img("x", "amd64", t0, "x", "x/amd64"), "ends in an architecture", false},
		{"bad name", img("Nginx", "amd64", t0, "x"), "must start with a lowercase letter", false},
		{"new version", img("nginx", "amd64", t0.Add(time.Second), "n2"), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base(t)
			before := string(c.Marshal())
			res, err := c.Add(tt.image)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Add error = %v, want it to contain %q", err, tt.wantErr)
				}
				if string(c.Marshal()) != before {
					t.Error("a refused Add changed the catalog")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Changed() != tt.changed || (string(c.Marshal()) != before) != tt.changed {
				t.Errorf("Changed() = %v, catalog changed = %v, want %v", res.Changed(), string(c.Marshal()) != before, tt.changed)
			}
			if p := c.Problems(); len(p) > 0 {
				t.Errorf("Problems() = %q", p)
			}
		})
	}
}

func TestProductFieldsFollowNewestVersion(t *testing.T) {
	c := New()
	newer := img("nginx", "amd64", t0.Add(time.Hour), "n2")
	newer.Release = "trixie"
	mustAdd(t, c, newer)
	older := img("nginx", "amd64", t0, "n1")
	mustAdd(t, c, older)
	if got := c.Products["nginx:amd64"].Release; got != "trixie" {
		t.Errorf("release = %q after adding an older version, want the newest version's (trixie)", got)
	}
}

func TestResolveAndRemove(t *testing.T) {
	c := New()
	mustAdd(t, c, img("nginx", "amd64", t0, "n1", "web"))
	mustAdd(t, c, img("nginx", "amd64", t0.Add(time.Hour), "n2"))
	mustAdd(t, c, img("nginx", "arm64", t0, "a1"))
	fp1, fp2 := hexOf("fpn1"), hexOf("fpn2")
	tests := []struct {
		target, arch string
		want         []string // product/version
		wantErr      string
	}{
		{"nginx", "", []string{"nginx:amd64/20261125_183500", "nginx:arm64/20261125_173500"}, ""},
		{"nginx", "amd64", []string{"nginx:amd64/20261125_183500"}, ""},
		{"web/amd64", "", []string{"nginx:amd64/20261125_183500"}, ""},
		{"nginx/arm64", "", []string{"nginx:arm64/20261125_173500"}, ""},
		{fp1, "", []string{"nginx:amd64/20261125_173500"}, ""},
		{fp2[:12], "", []string{"nginx:amd64/20261125_183500"}, ""},
		{"nope", "", nil, `no image or alias "nope"`},
		{strings.Repeat("0", 64), "", nil, "no image with fingerprint"},
		{"nginx", "sparc", nil, "unknown architecture"},
	}
	for _, tt := range tests {
		got, err := c.Resolve(tt.target, tt.arch)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Resolve(%q) error = %v, want %q", tt.target, err, tt.wantErr)
			}
			continue
		}
		var names []string
		for _, r := range got {
			names = append(names, r.Product+"/"+r.Version)
		}
		if strings.Join(names, " ") != strings.Join(tt.want, " ") {
			t.Errorf("Resolve(%q, %q) = %v, want %v", tt.target, tt.arch, names, tt.want)
		}
	}

	// Removing the latest makes the previous version the latest again, and
	// its files are retired, not forgotten.
	now := t0.Add(3 * time.Hour)
	if _, err := c.Remove("nginx", "amd64", now); err != nil {
		t.Fatal(err)
	}
	es := c.Entries()
	if es[0].Fingerprint != fp1 || !es[0].Latest || es[0].Aliases[0] != "nginx" {
		t.Errorf("after remove, first entry = %+v, want fp1 as latest with aliases", es[0])
	}
	for _, p := range img("nginx", "amd64", t0, "n2").Paths() {
		if got := c.State.Retired[p]; !got.Equal(now) {
			t.Errorf("retired[%s] = %v, want %v", p, got, now)
		}
	}
	// Republishing the removed image un-retires its files.
	mustAdd(t, c, img("nginx", "amd64", t0.Add(time.Hour), "n2"))
	if c.State != nil && len(c.State.Retired) != 0 {
		t.Errorf("retired = %v after republishing, want empty", c.State.Retired)
	}
}

func TestDeletable(t *testing.T) {
	now := t0.Add(10 * time.Hour)
	grace := 2 * time.Hour
	c := New()
	live := img("nginx", "amd64", t0, "live")
	mustAdd(t, c, live)
	old := img("nginx", "amd64", t0.Add(time.Hour), "old")
	mustAdd(t, c, old)
	recent := img("nginx", "amd64", t0.Add(2*time.Hour), "recent")
	mustAdd(t, c, recent)
	c.Remove(old.Fingerprint, "", now.Add(-3*time.Hour))    // retired long ago
	c.Remove(recent.Fingerprint, "", now.Add(-time.Minute)) // retired a minute ago
	pending := img("redis", "amd64", t0, "pending")
	c.AddPending(Pending{ID: "p", Product: "redis:amd64", Paths: pending.Paths(), Expires: now.Add(time.Hour)})
	orphanOld, orphanNew := "images/"+hexOf("o1")+"/rootfs.squashfs", "images/"+hexOf("o2")+"/rootfs.squashfs"

	var objs []Object
	add := func(modTime time.Time, paths ...string) {
		for _, p := range paths {
			objs = append(objs, Object{Path: p, ModTime: modTime})
		}
	}
	longAgo := now.Add(-48 * time.Hour)
	add(longAgo, live.Paths()...)
	add(longAgo, old.Paths()...)
	add(longAgo, recent.Paths()...)
	add(now, pending.Paths()...)
	add(longAgo, orphanOld, "streams/v1/images.json")
	add(now.Add(-time.Minute), orphanNew)

	got := c.Deletable(objs, now, grace)
	want := old.Paths()
	if strings.Join(got, " ") != strings.Join(sortedSet(want), " ") {
		t.Errorf("Deletable = %v\nwant %v", got, sortedSet(want))
	}
	// Unreferenced files without a retirement record, however old, are
	// retired now and wait the full grace (another tool may have rewritten
	// the catalog a second ago).
	for _, p := range []string{orphanOld, orphanNew} {
		if at, ok := c.State.Retired[p]; !ok || !at.Equal(now) {
			t.Errorf("retired[%s] = %v, %v; want %v", p, at, ok, now)
		}
	}
	if got := c.Deletable(objs, now.Add(grace-time.Second), grace); slices.Contains(got, orphanOld) || slices.Contains(got, orphanNew) {
		t.Errorf("Deletable a second before the orphans' grace ends = %v", got)
	}
	if got := c.Deletable(objs, now.Add(grace), grace); !slices.Contains(got, orphanOld) || !slices.Contains(got, orphanNew) {
		t.Errorf("Deletable once the orphans' grace ended = %v, want both orphans", got)
	}
	// With no grace, the recently retired and the young orphan go too, but
	// never a referenced file or one a live publish is uploading.
	got = c.Deletable(objs, now, 0)
	want = append(append(append(old.Paths(), recent.Paths()...), orphanOld), orphanNew)
	if strings.Join(got, " ") != strings.Join(sortedSet(want), " ") {
		t.Errorf("Deletable(grace 0) = %v\nwant %v", got, sortedSet(want))
	}
}

func TestIndexProducts(t *testing.T) {
	c := New()
	mustAdd(t, c, img("nginx", "amd64", t0, "n1"))
	c.AddPending(Pending{ID: "a", Product: "redis:amd64", Expires: t0.Add(time.Hour)})
	c.AddPending(Pending{ID: "b", Product: "dead:amd64", Expires: t0.Add(-time.Hour)})
	got := c.indexProducts(t0)
	if strings.Join(got, ",") != "nginx:amd64,redis:amd64" {
		t.Errorf("indexProducts = %v", got)
	}
	golden(t, "index.json", BuildIndex(got).Marshal())
	ix, err := ParseIndex(BuildIndex(got).Marshal())
	if err != nil || len(ix.Index[ContentID].Products) != 2 {
		t.Errorf("ParseIndex = %+v, %v", ix, err)
	}
}

func TestCommitsAreBounded(t *testing.T) {
	c := New()
	for i := range MaxCommits + 10 {
		c.RecordCommit(hexOf(string(rune(i))), t0)
	}
	if len(c.State.Commits) != MaxCommits || c.HasCommit(hexOf(string(rune(0)))) || !c.HasCommit(hexOf(string(rune(MaxCommits+9)))) {
		t.Errorf("commits: len %d", len(c.State.Commits))
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	valid := string(func() []byte { c := New(); mustAdd(t, c, img("nginx", "amd64", t0, "n1")); return c.Marshal() }())
	tests := []struct{ name, json, want string }{
		{"empty", "", "empty file"},
		{"not json", "{", "invalid JSON"},
		{"trailing data", valid + "{}", "unexpected data after"},
		{"size as string", strings.Replace(valid, `"size": 688`, `"size": "688"`, 1), `field "products.versions.items.size": JSON string where int64 is required`},
		{"aliases as list", strings.Replace(valid, `"aliases": "nginx"`, `"aliases": ["nginx"]`, 1), `"products.aliases": JSON array`},
		{"wrong datatype", strings.Replace(valid, `"datatype": "image-downloads"`, `"datatype": "x"`, 1), `datatype is "x"`},
		{"wrong format", strings.Replace(valid, `"format": "products:1.0"`, `"format": "x"`, 1), `format is "x"`},
		{"no products", `{"content_id":"images","datatype":"image-downloads","format":"products:1.0"}`, "missing \"products\""},
		{"null product", `{"content_id":"images","datatype":"image-downloads","format":"products:1.0","products":{"a":null}}`, `product "a" is null`},
		{"uppercase hex", strings.Replace(valid, hexOf("rootn1"), strings.ToUpper(hexOf("rootn1")), 1), "not 64 lowercase hex"},
		{"path traversal", strings.Replace(valid, `"images/`+hexOf("fpn1")+`/rootfs.squashfs"`, `"../etc/passwd"`, 1), "not a clean relative path"},
		{"absolute path", strings.Replace(valid, `"images/`+hexOf("fpn1")+`/rootfs.squashfs"`, `"/etc/passwd"`, 1), "not a clean relative path"},
		{"negative size", strings.Replace(valid, `"size": 688`, `"size": -1`, 1), "negative size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.json == valid {
				t.Fatal("replacement did not apply")
			}
			_, err := Parse([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// A catalog written by the reference tool incus-simplestreams parses, and
// our operations keep its products.
func TestParseIncusSimplestreamsCatalog(t *testing.T) {
	data, err := os.ReadFile("testdata/incus-simplestreams-images.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Problems(); len(p) != 0 {
		t.Errorf("Problems() = %q, want none", p)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "lxd.tar.xz") {
		t.Errorf("Warnings() = %q, want only the missing LXD item", w)
	}
	if len(c.Entries()) == 0 {
		t.Error("no entries")
	}
	mustAdd(t, c, img("nginx", "amd64", t0, "n1"))
	if len(c.Products) != 2 {
		t.Errorf("products = %d, want 2", len(c.Products))
	}
}

func TestNormalizeArch(t *testing.T) {
	for in, want := range map[string]string{"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "ppc64le": "ppc64el", "i686": "i386", "riscv64": "riscv64", "s390x": "s390x"} {
		if got, err := osarch.Normalize(in); got != want || err != nil {
			t.Errorf("osarch.Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := osarch.Normalize("mips"); err == nil {
		t.Error("osarch.Normalize(mips) succeeded")
	}
}

func TestVersionKey(t *testing.T) {
	k := VersionKey(time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)))
	if k != "20260102_020405" || !validVersionKey(k) {
		t.Errorf("VersionKey = %q", k)
	}
	for _, bad := range []string{"2026", "v1.2.3456", "20261345"} {
		if validVersionKey(bad) {
			t.Errorf("validVersionKey(%q) = true", bad)
		}
	}
}

// Product keys follow the key rule, at most MaxProductKeyLen bytes; the
// shapes this registry and other servers use pass.
func TestValidateProductKey(t *testing.T) {
	for _, pk := range []string{"nginx:amd64", "nginx/cloud:1.2:arm64", "debian:bookworm:amd64:default", "com.ubuntu.cloud:server:24.04:amd64", strings.Repeat("k", MaxProductKeyLen)} {
		if err := ValidateProductKey(pk); err != nil {
			t.Errorf("ValidateProductKey(%q) = %v", pk, err)
		}
	}
	for _, pk := range []string{"", strings.Repeat("k", MaxProductKeyLen+1), strings.Repeat("k", 100<<10), "a\x00b/..\\c", "../x", "/abs", "a b", "caf\u00e9", ".hidden", "a//b"} {
		err := ValidateProductKey(pk)
		if err == nil || !strings.HasPrefix(err.Error(), "product key") || len(err.Error()) > 200 {
			t.Errorf("ValidateProductKey(%.40q) = %.300v, want a short error", pk, err)
		}
	}
}
