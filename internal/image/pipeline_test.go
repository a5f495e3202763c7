package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"testing"
)

// cancelReader cancels a context after its first read.
type cancelReader struct {
	r      io.Reader
	cancel func()
}

func (c cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.cancel()
	return n, err
}

func TestHashParallelCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	data := bytes.Repeat([]byte{1}, 10*chunkSize)
	n, err := hashParallel(ctx, cancelReader{bytes.NewReader(data), cancel},
		[]hash.Hash{sha256.New(), sha256.New()}, nil, func(int64) {})
	if !errors.Is(err, context.Canceled) || n >= int64(len(data)) {
		t.Fatalf("got %d, %v; want context.Canceled early", n, err)
	}
}

func TestHashParallelSums(t *testing.T) {
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, 3*chunkSize + 5, 9 * chunkSize} {
		data := bytes.Repeat([]byte("abcdefg"), size/7+1)[:size]
		hs := []hash.Hash{sha256.New(), sha256.New(), sha256.New()}
		hs[2].Write([]byte("prefix"))
		var head []byte
		n, err := hashParallel(context.Background(), bytes.NewReader(data), hs,
			func(h []byte) error { head = bytes.Clone(h); return nil }, func(int64) {})
		if err != nil || n != int64(size) {
			t.Fatalf("size %d: got %d, %v", size, n, err)
		}
		want := sha256.Sum256(data)
		both := sha256.Sum256(append([]byte("prefix"), data...))
		if !bytes.Equal(hs[0].Sum(nil), want[:]) || !bytes.Equal(hs[1].Sum(nil), want[:]) || !bytes.Equal(hs[2].Sum(nil), both[:]) {
			t.Errorf("size %d: wrong sums", size)
		}
		if !bytes.Equal(head, data[:min(size, headSize)]) && size > 0 {
			t.Errorf("size %d: head of %d bytes", size, len(head))
		}
	}
}
