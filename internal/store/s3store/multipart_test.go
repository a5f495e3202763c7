package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/s3store"
	"github.com/incus-appliance/registry/internal/store/storetest"
)

// small makes 23 MiB go up in five 5 MiB parts, three at a time.
var small = s3store.Options{PartSize: 5 * mib, MultipartThreshold: 5 * mib, Concurrency: 3}

func TestMultipartRoundTrip(t *testing.T) {
	srv := start(t, false)
	data := pseudoRandom(1, 23*mib)
	sum := digest.Of(data)
	cases := []struct {
		name string
		opts s3store.Options
		body func() io.Reader
	}{
		{"seekable", small, func() io.Reader { return bytes.NewReader(data) }},
		{"stream", small, func() io.Reader { return onlyReader{bytes.NewReader(data)} }},
		// Below the threshold, but a stream larger than a part is not
		// buffered whole: it goes multipart.
		{"stream-below-threshold", s3store.Options{PartSize: 5 * mib, Concurrency: 3}, func() io.Reader {
			return onlyReader{bytes.NewReader(data)}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := newStore(t, srv, c.opts)
			key := "images/" + c.name + "/rootfs.squashfs"
			info := mustPut(t, st, key, c.body(), int64(len(data)), store.PutOptions{SHA256: sum})
			if !strings.HasSuffix(info.ETag, `-5"`) {
				t.Errorf("ETag %s is not that of a 5-part upload", info.ETag)
			}
			if info.SHA256 != sum || info.Size != int64(len(data)) {
				t.Errorf("Put info SHA256 %s Size %d, want %s %d", info.SHA256, info.Size, sum, len(data))
			}
			si := storetest.WantObject(t, st, key, data)
			if si.SHA256 != sum || si.ETag != info.ETag {
				t.Errorf("Stat SHA256 %q ETag %s, want %s %s", si.SHA256, si.ETag, sum, info.ETag)
			}
			noUploads(t, srv)
		})
	}
}

func TestMultipartWrongSHA256(t *testing.T) {
	srv := start(t, false)
	st := newStore(t, srv, small)
	data := pseudoRandom(2, 23*mib)
	for _, body := range []io.Reader{bytes.NewReader(data), onlyReader{bytes.NewReader(data)}} {
		_, err := st.Put(t.Context(), "obj", body, int64(len(data)), store.PutOptions{SHA256: digest.Of([]byte("other"))})
		if !errors.Is(err, store.ErrChecksumMismatch) {
			t.Errorf("Put with a wrong SHA256: error = %v, want ErrChecksumMismatch", err)
		}
		wantAbsent(t, st, "obj")
		noUploads(t, srv)
	}
	// Short and long bodies, found out only at the end of the stream.
	for _, size := range []int64{int64(len(data)) + 1, int64(len(data)) - 1} {
		_, err := st.Put(t.Context(), "obj", onlyReader{bytes.NewReader(data)}, size, store.PutOptions{})
		if !errors.Is(err, store.ErrChecksumMismatch) {
			t.Errorf("Put of %d bytes declared %d: error = %v, want ErrChecksumMismatch", len(data), size, err)
		}
		wantAbsent(t, st, "obj")
		noUploads(t, srv)
	}
}

// cancelAfter cancels its context once it has returned n bytes.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	m, err := c.r.Read(p[:min(len(p), 256<<10)])
	c.n -= int64(m)
	return m, err
}

func TestMultipartCancelled(t *testing.T) {
	srv := start(t, false)
	st := newStore(t, srv, small)
	data := pseudoRandom(3, 23*mib)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	body := &cancelAfter{r: bytes.NewReader(data), n: 12 * mib, cancel: cancel}
	_, err := st.Put(ctx, "obj", body, int64(len(data)), store.PutOptions{})
	t.Logf("cancelled Put: %v", err)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put cancelled mid-body: error = %v, want context.Canceled", err)
	}
	wantAbsent(t, st, "obj")
	noUploads(t, srv)
}

func TestMultipartConditions(t *testing.T) {
	srv := start(t, false)
	st := newStore(t, srv, small)
	data := pseudoRandom(4, 11*mib)
	size := int64(len(data))
	old := mustPut(t, st, "obj", strings.NewReader("old"), 3, store.PutOptions{})

	_, err := st.Put(t.Context(), "obj", bytes.NewReader(data), size, store.PutOptions{IfAbsent: true})
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Errorf("IfAbsent multipart Put onto an existing key: error = %v, want ErrPreconditionFailed", err)
	}
	_, err = st.Put(t.Context(), "obj", bytes.NewReader(data), size, store.PutOptions{IfMatch: `"0123456789abcdef0123456789abcdef"`})
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Errorf("IfMatch multipart Put with a stale ETag: error = %v, want ErrPreconditionFailed", err)
	}
	if info := storetest.WantObject(t, st, "obj", []byte("old")); info.ETag != old.ETag {
		t.Errorf("ETag changed from %s to %s by failed Puts", old.ETag, info.ETag)
	}
	noUploads(t, srv)

	_, err = st.Put(t.Context(), "missing", bytes.NewReader(data), size, store.PutOptions{IfMatch: old.ETag})
	t.Logf("IfMatch on a missing key: %v", err)
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("IfMatch multipart Put onto a missing key: error = %v, want ErrNotFound", err)
	}
	wantAbsent(t, st, "missing")
	noUploads(t, srv)

	// The conditions succeed where they hold.
	mustPut(t, st, "obj", bytes.NewReader(data), size, store.PutOptions{IfMatch: old.ETag})
	storetest.WantObject(t, st, "obj", data)
	mustPut(t, st, "new", bytes.NewReader(data), size, store.PutOptions{IfAbsent: true})
	storetest.WantObject(t, st, "new", data)
	noUploads(t, srv)
}
