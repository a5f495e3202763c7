package storetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
)

func (s *suite) testChecksumMismatch(t *testing.T, st store.Store, base string) {
	ctx := t.Context()
	wrong := digest.Of([]byte("something else"))

	key := base + "new"
	_, err := put(ctx, st, key, []byte("payload"), store.PutOptions{SHA256: wrong})
	if !errors.Is(err, store.ErrChecksumMismatch) {
		t.Fatalf("Put with a wrong SHA256: error = %v, want ErrChecksumMismatch", err)
	}
	wantAbsent(t, st, key)

	key = base + "existing"
	old := mustPut(t, st, key, []byte("old"), store.PutOptions{})
	_, err = put(ctx, st, key, []byte("new"), store.PutOptions{SHA256: wrong})
	if !errors.Is(err, store.ErrChecksumMismatch) {
		t.Fatalf("Put with a wrong SHA256: error = %v, want ErrChecksumMismatch", err)
	}
	if info := wantContent(t, st, key, []byte("old")); info.ETag != old.ETag {
		t.Errorf("ETag changed from %s to %s by a failed Put", old.ETag, info.ETag)
	}
	// Conditions do not rescue a bad body.
	_, err = put(ctx, st, key, []byte("new"), store.PutOptions{SHA256: wrong, IfMatch: old.ETag})
	if !errors.Is(err, store.ErrChecksumMismatch) {
		t.Fatalf("IfMatch Put with a wrong SHA256: error = %v, want ErrChecksumMismatch", err)
	}
	wantContent(t, st, key, []byte("old"))
}

func (s *suite) testSizeMismatch(t *testing.T, st store.Store, base string) {
	ctx := t.Context()
	cases := []struct {
		name string
		body []byte
		size int64
		opts store.PutOptions
	}{
		{"short", []byte("hello"), 10, store.PutOptions{}},
		{"long", []byte("hello world"), 5, store.PutOptions{}},
		{"short-empty", nil, 1, store.PutOptions{}},
		{"long-from-empty", []byte("x"), 0, store.PutOptions{}},
		// The digest of the declared prefix must not make a long body pass.
		{"long-with-prefix-sha", []byte("hello world"), 5, store.PutOptions{SHA256: digest.Of([]byte("hello"))}},
		{"short-with-sha", []byte("hello"), 10, store.PutOptions{SHA256: digest.Of([]byte("hello"))}},
	}
	for _, c := range cases {
		key := base + c.name
		_, err := st.Put(ctx, key, onlyReader{bytes.NewReader(c.body)}, c.size, c.opts)
		if !errors.Is(err, store.ErrChecksumMismatch) {
			t.Errorf("%s: Put of %d bytes declared as %d: error = %v, want ErrChecksumMismatch",
				c.name, len(c.body), c.size, err)
		}
		wantAbsent(t, st, key)
	}

	key := base + "existing"
	mustPut(t, st, key, []byte("old"), store.PutOptions{})
	_, err := st.Put(ctx, key, onlyReader{bytes.NewReader([]byte("new content"))}, 3, store.PutOptions{})
	if !errors.Is(err, store.ErrChecksumMismatch) {
		t.Errorf("Put of a long body over an existing key: error = %v, want ErrChecksumMismatch", err)
	}
	wantContent(t, st, key, []byte("old"))
}

func (s *suite) testReaderIsolation(t *testing.T, st store.Store, base string) {
	key := base + "obj"
	oldData := pseudoRandom(2, 256<<10)
	newData := pseudoRandom(3, 300<<10)
	mustPut(t, st, key, oldData, store.PutOptions{})

	rc, info, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 4<<10)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatalf("reading the head: %v", err)
	}

	// A backend that blocks writers while a reader is open would hang here.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := put(ctx, st, key, newData, store.PutOptions{}); err != nil {
		t.Fatalf("Put while a reader is open: %v", err)
	}

	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading the old object after the Put: %v", err)
	}
	if got := append(head, rest...); !bytes.Equal(got, oldData) {
		t.Errorf("the open reader yielded %d bytes (sha256 %s), want the complete old %d bytes (sha256 %s)",
			len(got), digest.Of(got), len(oldData), digest.Of(oldData))
	}
	checkInfo(t, "Get", info, key, oldData)
	wantContent(t, st, key, newData)
}

func (s *suite) testAttributes(t *testing.T, st store.Store, base string) {
	if !s.caps.Attributes {
		t.Skip("backend does not store attributes")
	}
	key := base + "index.json"
	opts := store.PutOptions{ContentType: "application/json", CacheControl: "public, max-age=60"}
	mustPut(t, st, key, []byte(`{}`), opts)
	check := func(op string, info store.ObjectInfo) {
		t.Helper()
		if info.ContentType != opts.ContentType || info.CacheControl != opts.CacheControl {
			t.Errorf("%s: ContentType %q, CacheControl %q; want %q, %q",
				op, info.ContentType, info.CacheControl, opts.ContentType, opts.CacheControl)
		}
	}
	_, info := get(t, st, key)
	check("Get", info)
	check("Stat", stat(t, st, key))

	// Attributes follow the content on replacement.
	opts = store.PutOptions{ContentType: "text/plain", CacheControl: "no-cache"}
	mustPut(t, st, key, []byte("replaced"), opts)
	_, info = get(t, st, key)
	check("Get after replace", info)
	check("Stat after replace", stat(t, st, key))
}

func (s *suite) testLargeStreamed(t *testing.T, st store.Store, base string) {
	key := base + "rootfs.squashfs"
	data := pseudoRandom(4, 8<<20)
	sum := digest.Of(data)
	info, err := put(t.Context(), st, key, data, store.PutOptions{SHA256: sum})
	if err != nil {
		t.Fatalf("Put of 8 MiB: %v", err)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("Put Size = %d, want %d", info.Size, len(data))
	}

	rc, ginfo, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, n, err := digest.OfReader(rc)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	if n != int64(len(data)) || got != sum {
		t.Errorf("read back %d bytes with sha256 %s, want %d bytes with %s", n, got, len(data), sum)
	}
	if ginfo.Size != int64(len(data)) || ginfo.SHA256 != sum {
		t.Errorf("Get info Size %d SHA256 %q, want %d %q", ginfo.Size, ginfo.SHA256, len(data), sum)
	}
	if si := stat(t, st, key); si.SHA256 != sum || si.ETag != ginfo.ETag {
		t.Errorf("Stat SHA256 %q ETag %s, want %q %s", si.SHA256, si.ETag, sum, ginfo.ETag)
	}
}
