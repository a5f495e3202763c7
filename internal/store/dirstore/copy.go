package dirstore

import (
	"context"
	"io"
	"sync"

	"github.com/incus-appliance/registry/internal/store"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyBuffer copies src to dst through a pooled 1 MiB buffer, failing as
// soon as ctx is done.
func copyBuffer(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	// store.ContextReader hides io.WriterTo, and dst is never an io.ReaderFrom
	// here, so every byte goes through buf.
	return io.CopyBuffer(dst, store.ContextReader(ctx, src), *buf)
}
