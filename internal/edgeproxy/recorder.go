package edgeproxy

import (
	"net/http"
	"time"
)

// recorder counts what is written and pushes the write deadline forward
// on every write, so a client that stops reading is cut off after
// timeout while a slow but steady download is never interrupted.
type recorder struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	status  int
	bytes   int64
	// A response must average minRate bytes/s from start+grace on: a
	// write that would fall behind is cut at the moment it does.
	start   time.Time
	minRate float64
	grace   time.Duration
	waited  *time.Duration // time the response waited for the origin, if any
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.timeout > 0 {
		d := time.Now().Add(r.timeout)
		if r.minRate > 0 {
			due := r.start.Add(r.grace + time.Duration(float64(r.bytes+int64(len(p)))/r.minRate*float64(time.Second)))
			if r.waited != nil {
				due = due.Add(*r.waited)
			}
			if due.Before(d) {
				d = due
			}
		}
		_ = r.rc.SetWriteDeadline(d)
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
