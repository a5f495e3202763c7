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

// progressStream is an upload body read once, front to back (no
// io.ReaderAt): PublishRequest.OpenRoot's checking reader. It reports how
// far it has been read and remembers whether a Read failed.
type progressStream struct {
	r      io.Reader
	report func(done int64)
	done   int64
	last   time.Time
	total  int64
	err    error // the first error other than io.EOF
}

func newProgressStream(r io.Reader, total int64, report func(done int64)) *progressStream {
	return &progressStream{r: r, total: total, report: report, last: time.Now()}
}

func (p *progressStream) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if err != nil && err != io.EOF && p.err == nil {
		p.err = err
	}
	if now := time.Now(); p.done == p.total || err != nil || now.Sub(p.last) >= 250*time.Millisecond {
		p.last = now
		p.report(min(p.done, p.total))
	}
	return n, err
}

// failed reports whether a Read failed (not counting the end of the body).
func (p *progressStream) failed() bool { return p.err != nil }
