package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/incus-appliance/registry/internal/store"
)

// byteRange is a part of an object: length bytes from offset.
type byteRange struct{ offset, length int64 }

// rangesOf are the ranges the suite reads of an object of size bytes:
// its start, a middle, its end, all of it.
func rangesOf(size int64) []byteRange {
	return []byteRange{{0, 10}, {1000, 5000}, {size - 100, 100}, {0, size}}
}

// testRangeRead: a backend with store.RangeReader reads any range of an
// object, with or without the ETag; with a stale ETag it fails with
// ErrPreconditionFailed (an overwritten object never mixes into a
// response), a missing key with ErrNotFound, an invalid key with
// ErrInvalidKey, an empty or negative range with an error. A backend
// without it must give a Get body that seeks instead (a local file), as
// the contract allows: the same ranges are read through it.
func (s *suite) testRangeRead(t *testing.T, st store.Store, base string) {
	key := base + "obj"
	data := pseudoRandom(9, 1<<20)
	info := mustPut(t, st, key, data, store.PutOptions{})
	rr, ok := st.(store.RangeReader)
	if !ok {
		testSeekableGet(t, st, key, data)
		return
	}
	for _, r := range rangesOf(int64(len(data))) {
		for _, etag := range []string{info.ETag, ""} {
			wantRange(t, rr, key, r, etag, data)
		}
	}

	ctx := t.Context()
	v2 := pseudoRandom(10, len(data))
	info2 := mustPut(t, st, key, v2, store.PutOptions{})
	if rc, err := rr.GetRange(ctx, key, 0, 10, info.ETag); !errors.Is(err, store.ErrPreconditionFailed) {
		closeIfOpen(rc)
		t.Errorf("GetRange with the ETag of the overwritten object: %v, want ErrPreconditionFailed", err)
	}
	wantRange(t, rr, key, byteRange{1000, 5000}, info2.ETag, v2)

	for _, c := range []struct {
		name, key      string
		offset, length int64
		want           error
	}{
		{"a missing key", base + "missing", 0, 10, store.ErrNotFound},
		{"an invalid key", base + "../escape", 0, 10, store.ErrInvalidKey},
		{"a negative offset", key, -1, 10, nil},
		{"an empty range", key, 0, 0, nil},
	} {
		rc, err := rr.GetRange(ctx, c.key, c.offset, c.length, "")
		closeIfOpen(rc)
		if err == nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("GetRange of %s: %v, want %v", c.name, err, orAnError(c.want))
		}
	}
}

// wantRange checks that GetRange reads exactly r of data.
func wantRange(t *testing.T, rr store.RangeReader, key string, r byteRange, etag string, data []byte) {
	t.Helper()
	rc, err := rr.GetRange(t.Context(), key, r.offset, r.length, etag)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d, %q): %v", key, r.offset, r.length, etag, err)
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): reading: %v", key, r.offset, r.length, err)
	}
	if !bytes.Equal(got, data[r.offset:r.offset+r.length]) {
		t.Errorf("GetRange(%q, %d, %d, %q) = %d bytes, not the range", key, r.offset, r.length, etag, len(got))
	}
}

// testSeekableGet reads the suite's ranges through a Get body that seeks.
func testSeekableGet(t *testing.T, st store.Store, key string, data []byte) {
	for _, r := range rangesOf(int64(len(data))) {
		rc, _, err := st.Get(t.Context(), key)
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		rs, ok := rc.(io.ReadSeeker)
		if !ok {
			rc.Close()
			t.Fatalf("the backend has no store.RangeReader and its Get body %T does not seek", rc)
		}
		got := make([]byte, r.length)
		if _, err := rs.Seek(r.offset, io.SeekStart); err != nil {
			t.Fatalf("Seek(%d): %v", r.offset, err)
		}
		_, err = io.ReadFull(rs, got)
		rc.Close()
		if err != nil || !bytes.Equal(got, data[r.offset:r.offset+r.length]) {
			t.Errorf("Get(%q) body from %d: %d bytes (%v), not the range", key, r.offset, r.length, err)
		}
	}
}

func closeIfOpen(rc io.ReadCloser) {
	if rc != nil {
		rc.Close()
	}
}

func orAnError(err error) string {
	if err == nil {
		return "an error"
	}
	return fmt.Sprint(err)
}
