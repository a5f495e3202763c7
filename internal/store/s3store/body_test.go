package s3store_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/incus-appliance/registry/internal/digest"
	"github.com/incus-appliance/registry/internal/store"
	"github.com/incus-appliance/registry/internal/store/s3store"
	"github.com/incus-appliance/registry/internal/store/storetest"
)

// genBody is a generated body of size bytes with Read and ReadAt but no
// Seek and no backing memory. It counts the bytes it hands out.
type genBody struct {
	size, pos int64
	served    atomic.Int64
	flipAtEnd bool        // corrupt every read after the first one past the end
	corrupt   atomic.Bool // set once flipAtEnd has taken effect
}

func (g *genBody) ReadAt(p []byte, off int64) (int, error) {
	if off >= g.size {
		if g.flipAtEnd {
			g.corrupt.Store(true)
		}
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), g.size-off))
	fill(p[:n], off)
	if g.corrupt.Load() {
		p[0] ^= 0xff
	}
	g.served.Add(int64(n))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (g *genBody) Read(p []byte) (int, error) {
	n, err := g.ReadAt(p, g.pos)
	g.pos += int64(n)
	return n, err
}

func (g *genBody) sha256() string {
	h := sha256.New()
	buf := make([]byte, mib)
	for off := int64(0); off < g.size; off += mib {
		n, _ := g.ReadAt(buf, off)
		h.Write(buf[:n])
	}
	g.served.Store(0)
	return hex.EncodeToString(h.Sum(nil))
}

// A multipart Put holds at most (Concurrency+1) part buffers, whatever the
// body's size: 64 MiB go up with 20 MiB of buffers.
func TestMultipartMemoryBound(t *testing.T) {
	srv := start(t, false)
	opts := s3store.Options{PartSize: 5 * mib, MultipartThreshold: 5 * mib, Concurrency: 3}
	st := newStore(t, srv, opts)
	body := &genBody{size: 64 * mib}
	sum := body.sha256()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	info, err := st.Put(t.Context(), "big", body, body.size, store.PutOptions{SHA256: sum})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	bound := uint64(opts.Concurrency+1) * uint64(opts.PartSize)
	t.Logf("Put of %d MiB allocated %.1f MiB (buffer bound %d MiB), ETag %s",
		body.size/mib, float64(alloc)/mib, bound/mib, info.ETag)
	if alloc > bound+4*mib {
		t.Errorf("Put of %d MiB allocated %.1f MiB, want about %d MiB", body.size/mib, float64(alloc)/mib, bound/mib)
	}
	if got, err := st.Stat(t.Context(), "big"); err != nil || got.SHA256 != sum || got.Size != body.size {
		t.Errorf("Stat = %+v, %v", got, err)
	}
	noUploads(t, srv)
}

// A single PutObject reads a seekable body twice (hash, send): the SDK
// reuses the digest as the SigV4 payload hash instead of a third pass.
func TestSinglePutReadsBodyTwice(t *testing.T) {
	srv := start(t, false)
	st := newStore(t, srv, s3store.Options{})
	body := &genBody{size: 10 * mib}
	mustPut(t, st, "obj", body, body.size, store.PutOptions{})
	if got := body.served.Load(); got != 2*body.size {
		t.Errorf("Put read %d bytes of a %d-byte body, want %d", got, body.size, 2*body.size)
	}
}

// The store itself checks x-amz-checksum-sha256: a body that changes
// between the hashing pass and the upload is refused.
func TestStoreRejectsCorruptUpload(t *testing.T) {
	srv := start(t, false)
	wantCorruptUploadRefused(t, newStore(t, srv, s3store.Options{}), "obj")
}

// wantCorruptUploadRefused puts at key a 1 MiB body whose last byte flips
// after it was hashed: the store refuses it and stores nothing.
func wantCorruptUploadRefused(t *testing.T, st store.Store, key string) {
	t.Helper()
	body := &genBody{size: 1 * mib, flipAtEnd: true}
	sum := (&genBody{size: body.size}).sha256()
	_, err := st.Put(t.Context(), key, body, body.size, store.PutOptions{SHA256: sum})
	t.Logf("corrupt upload: %v", err)
	if !errors.Is(err, store.ErrChecksumMismatch) {
		t.Errorf("Put of a body corrupted in flight: error = %v, want ErrChecksumMismatch", err)
	}
	wantAbsent(t, st, key)
}

// An *os.File that cannot seek (a pipe, as stdin may be) is a stream.
func TestPipeBody(t *testing.T) {
	srv := start(t, false)
	st := newStore(t, srv, s3store.Options{PartSize: 5 * mib})
	for _, size := range []int{mib, 7 * mib} { // buffered; multipart
		data := pseudoRandom(7, size)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() { w.Write(data); w.Close() }()
		mustPut(t, st, "piped", r, int64(size), store.PutOptions{SHA256: digest.Of(data)})
		r.Close()
		storetest.WantObject(t, st, "piped", data)
	}
}

// Seekable bodies are read from their current position, through ReadAt or
// through Seek alone.
func TestBodyPosition(t *testing.T) {
	srv := start(t, false)
	st := newStore(t, srv, s3store.Options{PartSize: 5 * mib, MultipartThreshold: 5 * mib})
	for _, size := range []int{mib, 7 * mib} { // single; multipart
		data := pseudoRandom(8, size)
		for name, body := range map[string]io.ReadSeeker{
			"reader-at":   bytes.NewReader(data),
			"seeker-only": struct{ io.ReadSeeker }{bytes.NewReader(data)},
		} {
			if _, err := body.Seek(3, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			mustPut(t, st, name, body, int64(size-3), store.PutOptions{SHA256: digest.Of(data[3:])})
			storetest.WantObject(t, st, name, data[3:])
		}
	}
}

// BenchmarkPutMultipart uploads a 256 MiB file with the default options
// (16 MiB parts, 4 at once) to a local MinIO.
func BenchmarkPutMultipart(b *testing.B) {
	srv := start(b, false)
	st := newStore(b, srv, s3store.Options{})
	const size = 256 * mib
	path := filepath.Join(b.TempDir(), "rootfs")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	b.SetBytes(size)
	for b.Loop() {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Put(b.Context(), "bench/rootfs", f, size, store.PutOptions{SHA256: sum}); err != nil {
			b.Fatal(err)
		}
	}
}
