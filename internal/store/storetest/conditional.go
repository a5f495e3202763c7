package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
)

// testBeforeCommit: PutOptions.BeforeCommit runs once, after the body was
// read and checked and before the object is visible; its error stores
// nothing; a body that fails its checks or its last Read never reaches it.
// Small and multipart-sized bodies, random-access and streamed, with and
// without the caller's part digests.
func (s *suite) testBeforeCommit(t *testing.T, st store.Store, base string) {
	ctx := t.Context()
	const partSize = 5 << 20
	for _, size := range []int{1000, 8 << 20} {
		data := pseudoRandom(uint64(size), size)
		var parts []string
		for off := 0; off < size; off += partSize {
			parts = append(parts, digest.Of(data[off:min(off+partSize, size)]))
		}
		for _, streamed := range []bool{false, true} {
			for _, withParts := range []bool{false, true} {
				name := fmt.Sprintf("%d-streamed-%v-parts-%v", size, streamed, withParts)
				body := func(b []byte) io.Reader {
					if streamed {
						return onlyReader{bytes.NewReader(b)}
					}
					return bytes.NewReader(b)
				}
				opts := store.PutOptions{IfAbsent: true, SHA256: digest.Of(data)}
				if withParts {
					opts.PartSHA256, opts.PartSize = parts, partSize
				}

				key := base + name + "/ok"
				calls := 0
				opts.BeforeCommit = func(ctx context.Context) error {
					calls++
					if _, err := st.Stat(ctx, key); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("%s: object visible (or Stat failed: %v) when BeforeCommit ran", name, err)
					}
					return nil
				}
				if _, err := st.Put(ctx, key, body(data), int64(size), opts); err != nil {
					t.Fatalf("%s: Put: %v", name, err)
				}
				if calls != 1 {
					t.Errorf("%s: BeforeCommit ran %d times, want 1", name, calls)
				}
				wantContent(t, st, key, data)

				key = base + name + "/refused"
				refused := errors.New("refused by the caller")
				opts.BeforeCommit = func(context.Context) error { return refused }
				if _, err := st.Put(ctx, key, body(data), int64(size), opts); !errors.Is(err, refused) {
					t.Fatalf("%s: Put with a failing BeforeCommit: %v, want its error", name, err)
				}
				wantAbsent(t, st, key)

				key = base + name + "/bad-body"
				opts.BeforeCommit = func(context.Context) error { t.Errorf("%s: BeforeCommit ran for a bad body", name); return nil }
				bad := bytes.Clone(data)
				bad[len(bad)-1] ^= 1
				if _, err := st.Put(ctx, key, body(bad), int64(size), opts); !errors.Is(err, store.ErrChecksumMismatch) {
					t.Fatalf("%s: Put of a changed body: %v, want ErrChecksumMismatch", name, err)
				}
				wantAbsent(t, st, key)
				failing := errors.New("last read failed")
				if _, err := st.Put(ctx, key, &failAtEOF{r: bytes.NewReader(data), err: failing}, int64(size), opts); !errors.Is(err, failing) {
					t.Fatalf("%s: Put of a body failing its last Read: %v, want that error", name, err)
				}
				wantAbsent(t, st, key)
			}
		}
	}
}

// failAtEOF is a stream whose end is an error, like a body that finds,
// once read, that it is not what it should have been.
type failAtEOF struct {
	r   io.Reader
	err error
}

func (f *failAtEOF) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		err = f.err
	}
	return n, err
}

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
	_, err = put(ctx, st, key, []byte("third"), store.PutOptions{IfAbsent: true, SHA256: digest.Of([]byte("third"))})
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
