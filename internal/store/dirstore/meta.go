package dirstore

import (
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"

	"github.com/incus-appliance/registry/internal/digest"

	"golang.org/x/sys/unix"
)

// xattrName is the extended attribute holding a file's metadata cache.
const xattrName = "user.appliance-registry"

// maxMetaLen bounds the attribute we are willing to read.
const maxMetaLen = 64 << 10

// meta is the metadata cache stored in the xattr. It is valid only while
// Size and MtimeNS match the file.
type meta struct {
	SHA256       string `json:"sha256"`
	Size         int64  `json:"size"`
	MtimeNS      int64  `json:"mtime_ns"`
	ContentType  string `json:"content_type"`
	CacheControl string `json:"cache_control"`
}

// readMeta returns f's metadata cache if it exists and still describes
// the file as fi (from the same descriptor) sees it. Any failure just
// means "no cache".
func readMeta(f *os.File, fi fs.FileInfo) (meta, bool) {
	var (
		buf  = make([]byte, 512)
		n    int
		gerr error
	)
	err := control(f, func(fd int) {
		n, gerr = unix.Fgetxattr(fd, xattrName, buf)
		if gerr == unix.ERANGE {
			if n, gerr = unix.Fgetxattr(fd, xattrName, nil); gerr == nil && n <= maxMetaLen {
				buf = make([]byte, n)
				n, gerr = unix.Fgetxattr(fd, xattrName, buf)
			}
		}
	})
	if err != nil || gerr != nil || n > len(buf) {
		return meta{}, false
	}
	var m meta
	if json.Unmarshal(buf[:n], &m) != nil || !digest.IsSHA256(m.SHA256) ||
		m.Size != fi.Size() || m.MtimeNS != fi.ModTime().UnixNano() {
		return meta{}, false
	}
	return m, true
}

// writeMeta records m on f. It reports false, without error, when the
// file system does not support user extended attributes.
func writeMeta(f *os.File, m meta) (bool, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return false, err
	}
	var serr error
	if err := control(f, func(fd int) { serr = unix.Fsetxattr(fd, xattrName, data, 0) }); err != nil {
		return false, err
	}
	if serr == unix.ENOTSUP || serr == unix.EOPNOTSUPP {
		return false, nil
	}
	if serr != nil {
		return false, &fs.PathError{Op: "setxattr", Path: f.Name(), Err: serr}
	}
	return true, nil
}

func control(f *os.File, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}

// etag is the ETag of content whose hex SHA-256 is digest.
func etag(digest string) string { return `"` + digest + `"` }

// hexSum encodes a digest.
func hexSum(sum []byte) string { return hex.EncodeToString(sum) }
