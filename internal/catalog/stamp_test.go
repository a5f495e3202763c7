package catalog

import (
	"strings"
	"testing"
	"time"
)

// TestSignedGolden: a signed product file and its index, stamped twice:
// the stamp comes before the products, each entry names its file's
// digest, and index.sjson's form differs from index.json only by its
// paths.
func TestSignedGolden(t *testing.T) {
	c := New()
	mustAdd(t, c, img("nginx", "amd64", t0, "1", "web"))
	c.Stamp = c.Stamp.Next(t0, 7*24*time.Hour)
	c.Stamp = c.Stamp.Next(t0.Add(time.Minute), 7*24*time.Hour)
	golden(t, "signed-images.json", c.Marshal())

	ix := BuildIndex([]string{"nginx:amd64"})
	e := ix.Index[ContentID]
	e.SHA256 = hexOf(string(c.Marshal()))
	ix.Index[ContentID] = e
	ix.Stamp = Stamp{}.Next(t0.Add(time.Minute), time.Hour)
	golden(t, "signed-index.json", ix.Marshal())
	golden(t, "signed-index.sjson-body", ix.Signed().Marshal())

	back, err := ix.Signed().Unsigned()
	if err != nil || string(back.Marshal()) != string(ix.Marshal()) {
		t.Errorf("Unsigned(Signed(ix)) = %s, %v; want ix back", back.Marshal(), err)
	}
	if ix.Index[ContentID].Path != ImagesPath {
		t.Errorf("Signed changed the index it was given")
	}
	if _, err := ix.Unsigned(); err == nil || !strings.Contains(err.Error(), "not a signed file") {
		t.Errorf("Unsigned(index.json) = %v, want an error", err)
	}

	for name, doc := range map[string][]byte{"images.json": c.Marshal(), "index.json": ix.Marshal()} {
		st, err := ReadStamp(doc)
		if err != nil || st.Check() != nil {
			t.Fatalf("%s: ReadStamp = %+v, %v (check: %v)", name, st, err, st.Check())
		}
	}
	if st, _ := ReadStamp(c.Marshal()); st.Serial != 2 || st.Updated != "Wed, 25 Nov 2026 17:36:00 +0000" || st.Expires != "2026-12-02T17:36:00Z" {
		t.Errorf("stamp = %+v", st)
	}
	parsed, err := Parse(c.Marshal())
	if err != nil || parsed.Stamp != c.Stamp {
		t.Errorf("Parse lost the stamp: %+v, %v", parsed.Stamp, err)
	}
	pix, err := ParseIndex(ix.Marshal())
	if err != nil || pix.Stamp != ix.Stamp || pix.Index[ContentID].SHA256 != e.SHA256 {
		t.Errorf("ParseIndex lost the stamp or the digest: %+v, %v", pix, err)
	}
}

// TestReadStampStopsBeforeProducts: the products of a stamped document
// are never read (a broken tail does not matter), and a document without
// a stamp has a zero one.
func TestReadStampStopsBeforeProducts(t *testing.T) {
	c := New()
	c.Stamp = Stamp{}.Next(t0, time.Hour)
	doc := c.Marshal()
	i := strings.Index(string(doc), `"products"`)
	if i < 0 || strings.Index(string(doc), `"registry_serial"`) > i {
		t.Fatalf("the stamp is not before the products:\n%s", doc)
	}
	st, err := ReadStamp(append(doc[:i:i], "garbage"...))
	if err != nil || st.Serial != 1 {
		t.Errorf("ReadStamp(truncated after the stamp) = %+v, %v", st, err)
	}
	if st, err := ReadStamp(New().Marshal()); err != nil || st != (Stamp{}) {
		t.Errorf("ReadStamp(unstamped) = %+v, %v", st, err)
	}
	for _, bad := range []string{"", "[]", `{"registry_serial": "1"}`, `{"updated": 1`} {
		if _, err := ReadStamp([]byte(bad)); err == nil {
			t.Errorf("ReadStamp(%q) = nil error", bad)
		}
	}
}

func TestStampCheck(t *testing.T) {
	good := Stamp{}.Next(t0, time.Hour)
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Stamp{
		"no serial":   {Updated: good.Updated, Expires: good.Expires},
		"bad updated": {Updated: "yesterday", Serial: 1, Expires: good.Expires},
		"no expiry":   {Updated: good.Updated, Serial: 1},
		"bad expiry":  {Updated: good.Updated, Serial: 1, Expires: "2026-12-01"},
	} {
		if err := s.Check(); err == nil {
			t.Errorf("%s: Check = nil", name)
		}
	}
	if at, _ := good.ExpiresAt(); !at.Equal(t0.Add(time.Hour)) {
		t.Errorf("ExpiresAt = %s", at)
	}
}

// TestStampRegistry: a serial or an expiry makes a stamp this registry's;
// SimpleStreams' own "updated" alone (cloud-images.ubuntu.com's documents)
// does not.
func TestStampRegistry(t *testing.T) {
	good := Stamp{}.Next(t0, time.Hour)
	for s, want := range map[Stamp]bool{
		good:                    true,
		{Serial: 1}:             true,
		{Expires: good.Expires}: true,
		{Updated: good.Updated}: false,
		{}:                      false,
	} {
		if s.Registry() != want {
			t.Errorf("%+v.Registry() = %v, want %v", s, !want, want)
		}
	}
}
