package storetest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
)

// pseudoRandom returns n deterministic bytes that do not compress.
func pseudoRandom(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	_, _ = r.Read(b) // never fails
	return b
}

func (s *suite) testMissing(t *testing.T, st store.Store, base string) {
	wantAbsent(t, st, base+"missing")
	wantAbsent(t, st, base+"missing/deeper/key.json")

	// A "directory" (a prefix of other keys) is not an object.
	mustPut(t, st, base+"dir/obj", []byte("x"), store.PutOptions{})
	wantAbsent(t, st, base+"dir")
}

func (s *suite) testPutGet(t *testing.T, st store.Store, base string) {
	cases := []struct {
		name    string
		data    []byte
		withSum bool
	}{
		{"small-with-sha", []byte(`{"hello":"world"}`), true},
		{"small-without-sha", []byte("no digest given"), false},
		{"empty", []byte{}, true},
		{"empty-without-sha", nil, false},
		{"binary", pseudoRandom(1, 100<<10), true},
	}
	for _, c := range cases {
		key := base + "objects/" + c.name
		var opts store.PutOptions
		if c.withSum {
			opts.SHA256 = digest.Of(c.data)
		}
		pinfo := mustPut(t, st, key, c.data, opts)
		info := wantContent(t, st, key, c.data)
		if info.ETag != pinfo.ETag {
			t.Errorf("%s: Get ETag %s, Put returned %s", c.name, info.ETag, pinfo.ETag)
		}
		if c.withSum {
			if info.SHA256 != opts.SHA256 {
				t.Errorf("%s: Get SHA256 = %q, want %q", c.name, info.SHA256, opts.SHA256)
			}
			if si := stat(t, st, key); si.SHA256 != opts.SHA256 {
				t.Errorf("%s: Stat SHA256 = %q, want %q", c.name, si.SHA256, opts.SHA256)
			}
		}
	}
}

func (s *suite) testOverwrite(t *testing.T, st store.Store, base string) {
	key := base + "obj"
	first := mustPut(t, st, key, []byte("first"), store.PutOptions{})
	second := mustPut(t, st, key, []byte("second version"), store.PutOptions{})
	if first.ETag == second.ETag {
		t.Errorf("ETag %s did not change when the content did", first.ETag)
	}
	info := wantContent(t, st, key, []byte("second version"))
	if info.ETag != second.ETag {
		t.Errorf("Get ETag %s, last Put returned %s", info.ETag, second.ETag)
	}
}

func (s *suite) testMaxLenKey(t *testing.T, st store.Store, base string) {
	// Segments stay short: file systems limit a name to 255 bytes.
	key := strings.TrimSuffix(base, "/")
	for len(key) < store.MaxKeyLen {
		rem := store.MaxKeyLen - len(key)
		if rem == 1 {
			key += "x"
			break
		}
		key += "/" + strings.Repeat("k", min(100, rem-1))
	}
	if err := store.ValidateKey(key); err != nil {
		t.Fatal(err)
	}
	data := []byte("longest key")
	mustPut(t, st, key, data, store.PutOptions{SHA256: digest.Of(data)})
	wantContent(t, st, key, data)
	list, err := st.List(t.Context(), base)
	if err != nil || len(list) != 1 || list[0].Key != key {
		t.Errorf("List(%q) = %v, %v; want just the long key", base, list, err)
	}
}

var invalidKeys = []string{
	"", "/abs", "a/../b", "a//b", ".hidden", "dir/.hidden", "a/./b", "..", "trailing/",
	"a\\b", "a\x00b", "a b", "tab\tkey", strings.Repeat("a", store.MaxKeyLen+1),
}

var invalidPrefixes = []string{"/abs", "a//", "../x", "a/../", ".hidden/", "a\\b", "x\x00"}

func (s *suite) testInvalidKeys(t *testing.T, st store.Store, base string) {
	ctx := t.Context()
	for _, key := range invalidKeys {
		if rc, _, err := st.Get(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("Get(%q) error = %v, want ErrInvalidKey", key, err)
		}
		if _, err := st.Stat(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Stat(%q) error = %v, want ErrInvalidKey", key, err)
		}
		if _, err := put(ctx, st, key, []byte("x"), store.PutOptions{}); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Put(%q) error = %v, want ErrInvalidKey", key, err)
		}
		if err := st.Delete(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Delete(%q) error = %v, want ErrInvalidKey", key, err)
		}
	}
	for _, prefix := range invalidPrefixes {
		if _, err := st.List(ctx, prefix); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("List(%q) error = %v, want ErrInvalidKey", prefix, err)
		}
	}
	// Nothing may have been stored under any name.
	list, err := st.List(ctx, "")
	if err != nil {
		t.Fatalf("List(\"\"): %v", err)
	}
	for _, info := range list {
		if err := store.ValidateKey(info.Key); err != nil {
			t.Errorf("List returned an invalid key: %v", err)
		}
	}
}

func (s *suite) testList(t *testing.T, st store.Store, base string) {
	ctx := t.Context()
	rel := []string{
		"images/a/one", "images/b", "images2/x", "images-x/y", "images.z",
		"streams/v1/index.json", "streams/v1/images.json",
	}
	content := map[string][]byte{}
	for i, r := range rel {
		data := bytes.Repeat([]byte{'a' + byte(i)}, i+1)
		content[base+r] = data
		mustPut(t, st, base+r, data, store.PutOptions{})
	}
	check := func(prefix string, wantRel ...string) {
		t.Helper()
		list, err := st.List(ctx, prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		var got []string
		for _, info := range list {
			got = append(got, strings.TrimPrefix(info.Key, base))
			s.checkListed(t, st, info, content[info.Key])
		}
		if !slices.Equal(got, wantRel) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, wantRel)
		}
	}
	// Byte order: '-' < '.' < '/' < '2'.
	check(base+"images/", "images/a/one", "images/b")
	check(base+"images", "images-x/y", "images.z", "images/a/one", "images/b", "images2/x")
	check(base+"images/a", "images/a/one")
	check(base+"streams/v1/", "streams/v1/images.json", "streams/v1/index.json")
	check(base+"streams/v1/ind", "streams/v1/index.json")
	check(base + "nothing/")
	check(base + "images/b/")
	check(base, "images-x/y", "images.z", "images/a/one", "images/b", "images2/x",
		"streams/v1/images.json", "streams/v1/index.json")

	// The whole store: sorted, and holding (at least) our keys.
	all, err := st.List(ctx, "")
	if err != nil {
		t.Fatalf("List(\"\"): %v", err)
	}
	keys := make([]string, len(all))
	for i, info := range all {
		keys[i] = info.Key
	}
	if !slices.IsSorted(keys) {
		t.Errorf("List(\"\") is not sorted by key")
	}
	for key := range content {
		if _, found := slices.BinarySearch(keys, key); !found {
			t.Errorf("List(\"\") lacks %q", key)
		}
	}
}

// checkListed checks a List entry against the object's content.
func (s *suite) checkListed(t *testing.T, st store.Store, info store.ObjectInfo, data []byte) {
	t.Helper()
	if data == nil {
		t.Errorf("List returned unexpected key %q", info.Key)
		return
	}
	if info.Size != int64(len(data)) {
		t.Errorf("List: %q Size = %d, want %d", info.Key, info.Size, len(data))
	}
	if info.ModTime.IsZero() {
		t.Errorf("List: %q ModTime is zero", info.Key)
	}
	if info.SHA256 != "" && info.SHA256 != digest.Of(data) {
		t.Errorf("List: %q SHA256 = %s, want %s", info.Key, info.SHA256, digest.Of(data))
	}
	if info.ETag != "" {
		if cur := stat(t, st, info.Key); cur.ETag != info.ETag {
			t.Errorf("List: %q ETag = %s, Stat says %s", info.Key, info.ETag, cur.ETag)
		}
	}
}

func (s *suite) testDelete(t *testing.T, st store.Store, base string) {
	ctx := t.Context()
	key := base + "nest/deep/obj"
	mustPut(t, st, key, []byte("doomed"), store.PutOptions{})
	if err := st.Delete(ctx, key); err != nil {
		t.Fatalf("Delete(%q): %v", key, err)
	}
	wantAbsent(t, st, key)
	if list, err := st.List(ctx, base); err != nil || len(list) != 0 {
		t.Errorf("List(%q) after Delete = %v, %v; want empty", base, list, err)
	}
	if err := st.Delete(ctx, key); err != nil {
		t.Errorf("second Delete(%q) = %v, want nil", key, err)
	}
	if err := st.Delete(ctx, base+"never/existed"); err != nil {
		t.Errorf("Delete of a missing key = %v, want nil", err)
	}
	// The former "directory" holds no object any more: its name is free.
	mustPut(t, st, base+"nest/deep", []byte("now a leaf"), store.PutOptions{})
	wantContent(t, st, base+"nest/deep", []byte("now a leaf"))

	// Deleting a "directory" (a prefix of other keys) deletes nothing.
	mustPut(t, st, base+"dir/kept", []byte("kept"), store.PutOptions{})
	if err := st.Delete(ctx, base+"dir"); err != nil {
		t.Errorf("Delete(%q) = %v, want nil", base+"dir", err)
	}
	wantContent(t, st, base+"dir/kept", []byte("kept"))

	// Deleting one object leaves its siblings alone.
	mustPut(t, st, base+"dir/sibling", []byte("sibling"), store.PutOptions{})
	if err := st.Delete(ctx, base+"dir/kept"); err != nil {
		t.Fatal(err)
	}
	wantContent(t, st, base+"dir/sibling", []byte("sibling"))
}
