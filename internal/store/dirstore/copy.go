package dirstore

import (
	"context"
	"io"
	"sync"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyBuffer copies src to dst through a pooled 1 MiB buffer, failing as
// soon as ctx is done.
func copyBuffer(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	// ctxReader hides io.WriterTo, and dst is never an io.ReaderFrom
	// here, so every byte goes through buf.
	return io.CopyBuffer(dst, ctxReader{ctx, src}, *buf)
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
