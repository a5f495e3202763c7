package image

import (
	"context"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"
)

const (
	chunkSize = 1 << 20   // bytes per read
	numChunks = 4         // buffers in flight; bounds memory to 4 MiB
	headSize  = 256 << 10 // bytes given to the first-chunk check
)

// bufPool recycles chunk buffers across calls.
var bufPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// chunk is one reused buffer, shared read-only by all hashers.
type chunk struct {
	buf  *[chunkSize]byte
	n    int
	refs atomic.Int32 // hashers yet to finish with it
}

// hashParallel reads r to its end once, in 1 MiB chunks, and writes every
// chunk to each of hs, each hasher in its own goroutine, so hashing runs
// at the speed of the slowest hasher rather than the sum. Before the first
// chunk is hashed, first (if not nil) is given its first headSize bytes and
// may refuse the file. tick is called with the bytes read after each chunk.
// ctx is checked between chunks. It returns the number of bytes read.
func hashParallel(ctx context.Context, r io.Reader, hs []hash.Hash, first func(head []byte) error, tick func(done int64)) (int64, error) {
	free := make(chan *chunk, numChunks)
	for range numChunks {
		free <- &chunk{buf: bufPool.Get().(*[chunkSize]byte)}
	}
	work := make([]chan *chunk, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		work[i] = make(chan *chunk, numChunks)
		wg.Go(func() {
			for c := range work[i] {
				h.Write(c.buf[:c.n])
				if c.refs.Add(-1) == 0 {
					free <- c
				}
			}
		})
	}
	defer func() {
		for _, w := range work {
			close(w)
		}
		wg.Wait()
		for range numChunks { // all are back once the hashers are done
			bufPool.Put((<-free).buf)
		}
	}()
	var done int64
	for {
		var c *chunk
		select {
		case c = <-free:
		case <-ctx.Done():
			return done, ctx.Err()
		}
		n, err := fill(ctx, r, c, done == 0, first)
		if n == 0 || err != nil {
			free <- c // not handed to the hashers
			return done, err
		}
		c.n = n
		c.refs.Store(int32(len(hs)))
		for _, w := range work {
			w <- c
		}
		done += int64(n)
		tick(done)
		if n < chunkSize {
			return done, nil
		}
	}
}

// fill reads the next chunk into c and, if isFirst, checks its head. It
// returns 0 and no error at the end of r.
func fill(ctx context.Context, r io.Reader, c *chunk, isFirst bool, first func([]byte) error) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(r, c.buf[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return 0, fmt.Errorf("read error: %w", err)
	}
	if n > 0 && isFirst && first != nil {
		if err := first(c.buf[:min(n, headSize)]); err != nil {
			return 0, err
		}
	}
	return n, nil
}
