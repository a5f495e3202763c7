package dirstore

import (
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// temp is a file being written in the temp directory.
type temp struct {
	dirfd     int
	name      string
	f         *os.File
	committed bool
}

// newTemp creates an empty temp file (mode 0600 until filled) in
// <root>/.registry-tmp, creating that directory if needed.
func newTemp(rootfd int) (*temp, error) {
	dirfd, _, err := openDir(rootfd, tmpDirName, true)
	if err != nil {
		return nil, explain(rootfd, tmpDirName, tmpDirName, err, true)
	}
	for {
		name := "put-" + randomHex(8)
		fd, err := openat(dirfd, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			unix.Close(dirfd)
			return nil, &fs.PathError{Op: "create", Path: tmpDirName + "/" + name, Err: err}
		}
		return &temp{dirfd: dirfd, name: name, f: os.NewFile(uintptr(fd), tmpDirName+"/"+name)}, nil
	}
}

// commit renames the temp file to parent/base, replacing any file there.
func (t *temp) commit(parent int, base string) error {
	if err := unix.Renameat(t.dirfd, t.name, parent, base); err != nil {
		return &fs.PathError{Op: "rename", Path: t.f.Name(), Err: err}
	}
	t.committed = true
	return nil
}

// close releases the temp file, removing it unless it was committed.
func (t *temp) close() {
	if !t.committed {
		unix.Unlinkat(t.dirfd, t.name, 0)
	}
	t.f.Close()
	unix.Close(t.dirfd)
}

// removeStaleTemps removes temp files last modified before cutoff: the
// leftovers of crashed writers. It is best effort; failures are ignored.
func removeStaleTemps(rootfd int, cutoff time.Time) {
	dirfd, err := openat(rootfd, tmpDirName, dirFlags, 0)
	if err != nil {
		return
	}
	d := os.NewFile(uintptr(dirfd), tmpDirName)
	defer d.Close()
	entries, _ := d.ReadDir(-1)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := openObject(dirfd, e.Name(), e.Name())
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		f.Close()
		if err == nil && fi.ModTime().Before(cutoff) {
			unix.Unlinkat(dirfd, e.Name(), 0)
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}
