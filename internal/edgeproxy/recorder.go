package edgeproxy

import (
	"net/http"
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
	r.sendHeader()
	if r.timeout <= 0 {
		n, err := r.ResponseWriter.Write(p)
		r.bytes += int64(n)
		return n, err
	}
	allowed := r.timeout
	if r.minRate > 0 {
		allowed = min(allowed, r.rateBudget(int64(len(p))))
	}
	start := time.Now()
	_ = r.rc.SetWriteDeadline(start.Add(allowed))
	n, err := r.ResponseWriter.Write(p)
	r.blocked += time.Since(start)
	r.bytes += int64(n)
	return n, err
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
