// Package storetest is the conformance suite every store.Store backend runs,
// so that memstore, dirstore and the S3 backend keep the same promises.
//
// A backend's test calls Run with a constructor:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() },
//			storetest.Capabilities{Attributes: true})
//	}
//
// The suite uses only the store.Store contract. Every subtest gets its own
// store from newStore and writes only under its own unique key prefix, so a
// backend may hand out views of one shared bucket; List("") is only
// required to contain the subtest's keys, not to equal them. The largest
// object written is 8 MiB. The optional store.RangeReader is part of the
// suite: a backend that has it is held to its contract, one that does not
// must give Get bodies that seek (RangeRead).
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
)

// Capabilities tells the suite which optional behaviours a backend has.
type Capabilities struct {
	// Attributes: ContentType and CacheControl given at Put time come back
	// from Stat and Get.
	Attributes bool
}

// Run runs the conformance suite against the stores returned by newStore,
// which is called once per subtest. Run closes each store when its subtest
// ends, so newStore need not (Close must then be safe to call twice if it
// does).
func Run(t *testing.T, newStore func(t *testing.T) store.Store, caps Capabilities) {
	s := &suite{newStore: newStore, caps: caps, run: randomHex(4)}
	tests := []struct {
		name string
		fn   func(t *testing.T, st store.Store, base string)
	}{
		{"Missing", s.testMissing},
		{"PutGet", s.testPutGet},
		{"Overwrite", s.testOverwrite},
		{"MaxLenKey", s.testMaxLenKey},
		{"IfAbsent", s.testIfAbsent},
		{"IfMatch", s.testIfMatch},
		{"ConflictingConditions", s.testConflictingConditions},
		{"ChecksumMismatch", s.testChecksumMismatch},
		{"SizeMismatch", s.testSizeMismatch},
		{"InvalidKeys", s.testInvalidKeys},
		{"List", s.testList},
		{"Delete", s.testDelete},
		{"ReaderIsolation", s.testReaderIsolation},
		{"ConcurrentIfMatch", s.testConcurrentIfMatch},
		{"ConcurrentIfAbsent", s.testConcurrentIfAbsent},
		{"CancelledContext", s.testCancelledContext},
		{"Attributes", s.testAttributes},
		{"LargeStreamed", s.testLargeStreamed},
		{"BeforeCommit", s.testBeforeCommit},
		{"RangeRead", s.testRangeRead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore(t)
			t.Cleanup(func() {
				if err := st.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, st, s.base(t))
		})
	}
}

type suite struct {
	newStore func(t *testing.T) store.Store
	caps     Capabilities
	run      string
}

// base returns the key prefix (ending in "/") owned by the running subtest:
// unique per Run call and per subtest.
func (s *suite) base(t *testing.T) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '-'
	}, t.Name())
	return "storetest-" + s.run + "/" + name + "/"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// onlyReader hides every method but Read (no io.Seeker, io.ReaderAt or
// io.WriterTo), like a network stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func put(ctx context.Context, st store.Store, key string, data []byte, opts store.PutOptions) (store.ObjectInfo, error) {
	return st.Put(ctx, key, onlyReader{bytes.NewReader(data)}, int64(len(data)), opts)
}

func mustPut(t *testing.T, st store.Store, key string, data []byte, opts store.PutOptions) store.ObjectInfo {
	t.Helper()
	info, err := put(t.Context(), st, key, data, opts)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if info.Key != key || info.Size != int64(len(data)) || info.ETag == "" {
		t.Fatalf("Put(%q) = %+v, want Key %q, Size %d and an ETag", key, info, key, len(data))
	}
	if info.SHA256 != "" && info.SHA256 != digest.Of(data) {
		t.Fatalf("Put(%q).SHA256 = %s, want %s", key, info.SHA256, digest.Of(data))
	}
	return info
}

// get reads key completely and checks that the info describes the content.
func get(t *testing.T, st store.Store, key string) ([]byte, store.ObjectInfo) {
	t.Helper()
	rc, info, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	data, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("Get(%q): reading: %v", key, err)
	}
	checkInfo(t, "Get", info, key, data)
	return data, info
}

func stat(t *testing.T, st store.Store, key string) store.ObjectInfo {
	t.Helper()
	info, err := st.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	return info
}

// WantObject checks that key holds exactly data: Get returns it, and Get
// and Stat describe it with the fields every result must carry and one
// ETag. It returns Stat's info.
func WantObject(t *testing.T, st store.Store, key string, data []byte) store.ObjectInfo {
	t.Helper()
	got, ginfo := get(t, st, key)
	if !bytes.Equal(got, data) {
		t.Fatalf("Get(%q) = %d bytes (sha256 %s), want %d bytes (sha256 %s)", key, len(got), digest.Of(got), len(data), digest.Of(data))
	}
	info := stat(t, st, key)
	checkInfo(t, "Stat", info, key, data)
	if info.ETag != ginfo.ETag {
		t.Errorf("Stat(%q).ETag = %s, Get's is %s", key, info.ETag, ginfo.ETag)
	}
	return info
}

// checkInfo checks the fields every Get/Stat result must carry.
func checkInfo(t *testing.T, op string, info store.ObjectInfo, key string, data []byte) {
	t.Helper()
	if info.Key != key {
		t.Errorf("%s(%q).Key = %q", op, key, info.Key)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("%s(%q).Size = %d, want %d", op, key, info.Size, len(data))
	}
	if info.ETag == "" {
		t.Errorf("%s(%q).ETag is empty", op, key)
	}
	if info.ModTime.IsZero() {
		t.Errorf("%s(%q).ModTime is zero", op, key)
	}
	if info.SHA256 != "" && info.SHA256 != digest.Of(data) {
		t.Errorf("%s(%q).SHA256 = %s, want %s", op, key, info.SHA256, digest.Of(data))
	}
}

// wantContent checks that key holds exactly data.
func wantContent(t *testing.T, st store.Store, key string, data []byte) store.ObjectInfo {
	t.Helper()
	got, info := get(t, st, key)
	if !bytes.Equal(got, data) {
		t.Fatalf("Get(%q) = %d bytes %.40q, want %d bytes %.40q", key, len(got), got, len(data), data)
	}
	sinfo := stat(t, st, key)
	checkInfo(t, "Stat", sinfo, key, data)
	if sinfo.ETag != info.ETag {
		t.Errorf("Stat(%q).ETag = %s, Get gave %s", key, sinfo.ETag, info.ETag)
	}
	return info
}

// wantAbsent checks that Get and Stat report ErrNotFound for key.
func wantAbsent(t *testing.T, st store.Store, key string) {
	t.Helper()
	if rc, _, err := st.Get(t.Context(), key); !errors.Is(err, store.ErrNotFound) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Get(%q) error = %v, want ErrNotFound", key, err)
	}
	if _, err := st.Stat(t.Context(), key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat(%q) error = %v, want ErrNotFound", key, err)
	}
}
