package s3store_test

import (
	"bytes"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/storetest"
)

// partDigests is what image.Inspect computes with Options.PartSize.
func partDigests(data []byte, size int) []string {
	var out []string
	for off := 0; off < len(data); off += size {
		out = append(out, digest.Of(data[off:min(off+size, len(data))]))
	}
	return out
}

// countingReaderAt counts the bytes read through it (parts are read
// concurrently).
type countingReaderAt struct {
	*bytes.Reader
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.Reader.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// With the caller's part digests, parts go straight from the body, each
// read once (no hashing pass), and the store verifies each digest.
func TestPrehashedParts(t *testing.T) {
	srv := start(t, false)
	st := newStore(t, srv, small)
	data := pseudoRandom(3, 17*mib+123)
	body := &countingReaderAt{Reader: bytes.NewReader(data)}
	info := mustPut(t, st, "pre/ok", body, int64(len(data)), store.PutOptions{
		SHA256: digest.Of(data), PartSize: 6 * mib, PartSHA256: partDigests(data, 6*mib), IfAbsent: true,
	})
	if !strings.HasSuffix(info.ETag, `-3"`) {
		t.Errorf("ETag %s is not that of the caller's 3 parts", info.ETag)
	}
	if n := body.n.Load(); n > int64(len(data))+2 {
		t.Errorf("read %d bytes of a %d-byte body: parts must be read once", n, len(data))
	}
	storetest.WantObject(t, st, "pre/ok", data)

	// The body changed after it was hashed: the store rejects the part,
	// nothing appears, no upload lingers.
	changed := bytes.Clone(data)
	changed[7*mib] ^= 1
	_, err := st.Put(t.Context(), "pre/changed", bytes.NewReader(changed), int64(len(data)), store.PutOptions{
		SHA256: digest.Of(data), PartSize: 6 * mib, PartSHA256: partDigests(data, 6*mib),
	})
	if !errors.Is(err, store.ErrChecksumMismatch) {
		t.Fatalf("changed body: err = %v, want ErrChecksumMismatch", err)
	}
	if _, err := st.Stat(t.Context(), "pre/changed"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat after rejected upload: %v, want ErrNotFound", err)
	}
	noUploads(t, srv)

	// Digests that do not fit the body are ignored (the body is hashed).
	mustPut(t, st, "pre/mismatched-count", bytes.NewReader(data), int64(len(data)), store.PutOptions{
		SHA256: digest.Of(data), PartSize: 6 * mib, PartSHA256: partDigests(data, 6*mib)[:2],
	})
}
