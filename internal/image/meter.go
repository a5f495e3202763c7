package image

import (
	"context"
	"fmt"
	"io"
)

// meter reads a file once, feeding every byte read to w, counting them,
// reporting progress and honouring ctx between reads.
type meter struct {
	ctx context.Context
	r   io.Reader
	w   io.Writer // hashers; never fail
	t   *ticker
	n   int64
	err error // first read error other than io.EOF, or ctx.Err()
}

// Read implements io.Reader.
func (m *meter) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if err := m.ctx.Err(); err != nil {
		m.err = err
		return 0, err
	}
	n, err := m.r.Read(p)
	if n > 0 {
		m.w.Write(p[:n])
		m.n += int64(n)
		m.t.tick(m.n)
	}
	if err != nil && err != io.EOF {
		m.err = err
	}
	return n, err
}

// problem explains m.err.
func (m *meter) problem() error {
	if m.ctx.Err() != nil && m.err == m.ctx.Err() {
		return m.err
	}
	return fmt.Errorf("read error after %d bytes: %w", m.n, m.err)
}
