package storetest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/incus-appliance/registry/internal/store"
)

func (s *suite) testIfAbsent(t *testing.T, st store.Store, base string) {
	ctx := t.Context()
	key := base + "obj"
	first := mustPut(t, st, key, []byte("first"), store.PutOptions{IfAbsent: true})
	_, err := put(ctx, st, key, []byte("second"), store.PutOptions{IfAbsent: true})
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("IfAbsent Put on an existing key: error = %v, want ErrPreconditionFailed", err)
	}
	if info := wantContent(t, st, key, []byte("first")); info.ETag != first.ETag {
		t.Errorf("ETag changed from %s to %s by a failed Put", first.ETag, info.ETag)
	}
	// Even with a valid digest the condition wins.
	_, err = put(ctx, st, key, []byte("third"), store.PutOptions{IfAbsent: true, SHA256: sha([]byte("third"))})
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("IfAbsent Put with SHA256: error = %v, want ErrPreconditionFailed", err)
	}
	wantContent(t, st, key, []byte("first"))

	// A deleted key is absent again.
	if err := st.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	mustPut(t, st, key, []byte("again"), store.PutOptions{IfAbsent: true})
	wantContent(t, st, key, []byte("again"))
}

func (s *suite) testIfMatch(t *testing.T, st store.Store, base string) {
	ctx := t.Context()
	key := base + "obj"
	v1 := mustPut(t, st, key, []byte("version 1"), store.PutOptions{})

	v2 := mustPut(t, st, key, []byte("version 2"), store.PutOptions{IfMatch: v1.ETag})
	if v2.ETag == v1.ETag {
		t.Errorf("ETag %s unchanged by new content", v2.ETag)
	}
	if info := wantContent(t, st, key, []byte("version 2")); info.ETag != v2.ETag {
		t.Errorf("Get ETag %s, Put returned %s", info.ETag, v2.ETag)
	}

	// v1's ETag is stale now.
	_, err := put(ctx, st, key, []byte("version 3"), store.PutOptions{IfMatch: v1.ETag})
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("IfMatch with a stale ETag: error = %v, want ErrPreconditionFailed", err)
	}
	if info := wantContent(t, st, key, []byte("version 2")); info.ETag != v2.ETag {
		t.Errorf("ETag changed from %s to %s by a failed Put", v2.ETag, info.ETag)
	}

	// The ETag from Stat works as well as the one from Put.
	cur := stat(t, st, key)
	mustPut(t, st, key, []byte("version 3"), store.PutOptions{IfMatch: cur.ETag})
	wantContent(t, st, key, []byte("version 3"))

	_, err = put(ctx, st, base+"missing", []byte("x"), store.PutOptions{IfMatch: v1.ETag})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("IfMatch on a missing key: error = %v, want ErrNotFound", err)
	}
	wantAbsent(t, st, base+"missing")
}

func (s *suite) testConflictingConditions(t *testing.T, st store.Store, base string) {
	key := base + "obj"
	_, err := put(t.Context(), st, key, []byte("x"), store.PutOptions{IfAbsent: true, IfMatch: `"etag"`})
	if err == nil {
		t.Errorf("Put with both IfAbsent and IfMatch succeeded")
	}
	wantAbsent(t, st, key)

	_, err = st.Put(t.Context(), key, onlyReader{bytes.NewReader(nil)}, -1, store.PutOptions{})
	if err == nil {
		t.Errorf("Put with a negative size succeeded")
	}
	wantAbsent(t, st, key)
}
