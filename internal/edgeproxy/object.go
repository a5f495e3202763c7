package edgeproxy

import (
	"context"
	"errors"
	"io"

	"github.com/incus-appliance/registry/internal/store"
)

// lazyObject is an io.ReadSeeker over an origin object that is not a local
// file: http.ServeContent seeks and reads it, and it fetches bytes only
// when read, with one ranged read per discontinuity (a plain download is
// the single body opened first; a Range request is one ranged read).
type lazyObject struct {
	ctx     context.Context
	ranger  store.RangeReader // nil: only the initial body can be read
	key     string
	etag    string
	size    int64
	pos     int64
	body    io.ReadCloser // open stream, positioned at bodyPos
	bodyPos int64
}

var errNoRange = errors.New("origin cannot read a byte range")

func (o *lazyObject) Read(p []byte) (int, error) {
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if o.body == nil || o.bodyPos != o.pos {
		if o.body != nil {
			o.body.Close()
			o.body = nil
		}
		if o.ranger == nil {
			return 0, errNoRange
		}
		body, err := o.ranger.GetRange(o.ctx, o.key, o.pos, o.size-o.pos, o.etag)
		if err != nil {
			return 0, err
		}
		o.body, o.bodyPos = body, o.pos
	}
	if rem := o.size - o.pos; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := o.body.Read(p)
	o.pos += int64(n)
	o.bodyPos += int64(n)
	if err == io.EOF && o.pos < o.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (o *lazyObject) Seek(offset int64, whence int) (int64, error) {
	pos, err := seekPos(o.pos, o.size, offset, whence)
	if err == nil {
		o.pos = pos
	}
	return pos, err
}

// seekPos is where io.Seeker's Seek(offset, whence) goes from pos in
// something of size bytes.
func seekPos(pos, size, offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += pos
	case io.SeekEnd:
		offset += size
	}
	if offset < 0 {
		return 0, errors.New("negative position")
	}
	return offset, nil
}

func (o *lazyObject) Close() error {
	if o.body != nil {
		return o.body.Close()
	}
	return nil
}
