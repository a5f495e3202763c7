package registry

import (
	"io"
	"os"
	"sync/atomic"
	"time"
)

// progressFile is an upload body that reports how far it has been read.
// It keeps the file's io.ReaderAt and io.Seeker so that backends can send
// parts in parallel or rewind for a retry.
type progressFile struct {
	f      *os.File
	total  int64
	done   atomic.Int64
	report func(done int64)
	last   atomic.Int64 // unix nanos of the last report
}

func newProgressFile(f *os.File, total int64, report func(done int64)) *progressFile {
	return &progressFile{f: f, total: total, report: report}
}

func (p *progressFile) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	p.advance(n, err)
	return n, err
}

func (p *progressFile) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.f.ReadAt(b, off)
	p.advance(n, err)
	return n, err
}

func (p *progressFile) Seek(offset int64, whence int) (int64, error) {
	return p.f.Seek(offset, whence)
}

// advance counts n bytes; it reports at most every 250 ms, and at the end.
// Bytes re-read after a rewind are counted again, capped at the total.
func (p *progressFile) advance(n int, err error) {
	done := min(p.done.Add(int64(n)), p.total)
	now := time.Now().UnixNano()
	last := p.last.Load()
	if done == p.total || err == io.EOF || now-last >= int64(250*time.Millisecond) && p.last.CompareAndSwap(last, now) {
		p.report(done)
	}
}
