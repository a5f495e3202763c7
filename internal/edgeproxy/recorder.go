package edgeproxy

import (
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// recorder counts what is written and pushes the write deadline forward
// on every write, so a client that stops reading is cut off after
// timeout while a slow but steady download is never interrupted.
//
// With minRate, a client must also take the response at minRate bytes/s
// on average: the time spent blocked writing to it (the client's doing,
// not the proxy's: time to first byte, waits for the origin and a busy
// CPU between writes do not count) may not exceed grace plus the bytes
// it took divided by minRate. Over HTTP/1 the bytes it took are those it
// acknowledged: what waits in the socket's send queue (megabytes, which
// a client that stops reading would otherwise be credited with) does not
// count. A write that would go past that is cut at the moment it does
// (and its connection reset: see clientConn).
//
// The response header is held until the first body byte, a flush or the
// end of the handler, so that a handler may still take back the header
// it set (discardHeader) and answer an error instead.
type recorder struct {
	http.ResponseWriter
	rc         *http.ResponseController
	timeout    time.Duration
	status     int
	headerSent bool
	bytes      int64
	minRate    float64
	grace      time.Duration
	blocked    time.Duration // time spent in writes so far
	conn       *clientConn   // HTTP/1: the response's own connection (nil: HTTP/2)
	maxQueue   int64         // the most a send queue can hold, in bytes
}

func (r *recorder) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		r.ResponseWriter.WriteHeader(code) // informational: not the answer
		return
	}
	if r.status == 0 {
		r.status = code
	}
}

// sendHeader writes the held header.
func (r *recorder) sendHeader() {
	if r.headerSent {
		return
	}
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.headerSent = true
	r.ResponseWriter.WriteHeader(r.status)
}

// discardHeader takes back the status and the entity headers set so far,
// when they have not gone out yet (false when they have).
func (r *recorder) discardHeader() bool {
	if r.headerSent {
		return false
	}
	r.status = 0
	hd := r.Header()
	for _, k := range []string{"Content-Length", "Content-Range", "Content-Type", "ETag", "Cache-Control", "Last-Modified", "Accept-Ranges"} {
		hd.Del(k)
	}
	return true
}

// FlushError sends the held header and what is buffered.
func (r *recorder) FlushError() error {
	r.sendHeader()
	return r.rc.Flush()
}

// finish sends the header of an answer without a body.
func (r *recorder) finish() { r.sendHeader() }

func (r *recorder) Write(p []byte) (int, error) {
	var n int
	err := r.timed(int64(len(p)), func() (int64, error) {
		var err error
		if r.conn != nil && r.conn.tls && len(p) > smallCopy {
			err = r.conn.batched(func() error {
				var werr error
				n, werr = r.ResponseWriter.Write(p)
				return werr
			})
			return int64(n), err
		}
		n, err = r.ResponseWriter.Write(p)
		return int64(n), err
	})
	return n, err
}

// timed runs write, which sends n bytes to the client, under the write
// timeout and the minimum rate, and counts what it sent.
func (r *recorder) timed(n int64, write func() (int64, error)) error {
	r.sendHeader()
	if r.timeout <= 0 {
		sent, err := write()
		r.bytes += sent
		return err
	}
	allowed := r.timeout
	if r.minRate > 0 {
		allowed = min(allowed, r.rateBudget(n))
	}
	start := time.Now()
	_ = r.rc.SetWriteDeadline(start.Add(allowed))
	sent, err := write()
	r.blocked += time.Since(start)
	r.bytes += sent
	return err
}

// rateBudget is how long a write of n more bytes may block under the
// minimum rate.
func (r *recorder) rateBudget(n int64) time.Duration {
	budget := func(took int64) time.Duration {
		return r.grace + time.Duration(float64(took)/r.minRate*float64(time.Second)) - r.blocked
	}
	b := budget(r.bytes + n)
	// What the send queue holds is not taken yet; asked only while it can
	// make the budget shorter than the timeout.
	if r.conn != nil && budget(r.bytes+n-r.maxQueue) < r.timeout {
		if q, ok := r.conn.unacked(); ok {
			b = budget(r.bytes - q)
		}
	}
	return b
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Response bodies are copied in 256 KiB chunks by up to bigCopies
// responses at a time, in 32 KiB by any more: large chunks mean fewer
// file reads and trips through net/http (a quarter less server CPU per
// GiB than io.Copy's 32 KiB, measured); the cap keeps memory bounded
// under hundreds of downloads.
const (
	bigCopy   = 256 << 10
	smallCopy = 32 << 10
	bigCopies = 16
)

var (
	bigCopySlots = make(chan struct{}, bigCopies)
	bigBufs      = sync.Pool{New: func() any { b := make([]byte, bigCopy); return &b }}
	smallBufs    = sync.Pool{New: func() any { b := make([]byte, smallCopy); return &b }}
)

// copyBuf lends a copy buffer, and the function that gives it back.
func copyBuf() ([]byte, func()) {
	select {
	case bigCopySlots <- struct{}{}:
		bp := bigBufs.Get().(*[]byte)
		return *bp, func() { bigBufs.Put(bp); <-bigCopySlots }
	default:
		bp := smallBufs.Get().(*[]byte)
		return *bp, func() { smallBufs.Put(bp) }
	}
}

// ReadFrom copies a response body (http.ServeContent hands its body here)
// through a copy buffer; a cached file over plain HTTP/1 goes from the
// file to the socket by sendfile, in chunks that each get the write
// timeout and the minimum rate.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok && r.conn != nil && !r.conn.tls {
		if f, lr := sendableFile(src); f != nil {
			return r.sendFile(rf, f, lr)
		}
	}
	buf, done := copyBuf()
	defer done()
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := r.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// sendFileChunk is how much of a file one sendfile call may send.
const sendFileChunk = 4 << 20

// sendFile sends what lr has left of f through rf (net/http: sendfile).
func (r *recorder) sendFile(rf io.ReaderFrom, f *os.File, lr *io.LimitedReader) (int64, error) {
	var total int64
	for lr.N > 0 {
		chunk := min(lr.N, sendFileChunk)
		var sent int64
		err := r.timed(chunk, func() (int64, error) {
			var err error
			sent, err = rf.ReadFrom(io.LimitReader(f, chunk))
			return sent, err
		})
		total += sent
		lr.N -= sent
		if err != nil {
			return total, err
		}
		if sent < chunk {
			return total, io.ErrUnexpectedEOF
		}
	}
	return total, nil
}

// sendableFile is the verified cached file src reads (http.ServeContent's
// io.LimitedReader over a cachedImage), if it is one.
func sendableFile(src io.Reader) (*os.File, *io.LimitedReader) {
	lr, ok := src.(*io.LimitedReader)
	if !ok {
		return nil, nil
	}
	img, ok := lr.R.(*cachedImage)
	if !ok {
		return nil, nil
	}
	if img.openFile() != nil {
		return nil, nil
	}
	f, ok := img.file.(*os.File)
	if !ok {
		return nil, nil
	}
	return f, lr
}
