package dirstore

import (
	"io/fs"

	"golang.org/x/sys/unix"
)

// lock takes the exclusive commit lock: flock(2) on <root>/.registry.lock
// through a new open file description, so it excludes other goroutines of
// this process as well as other processes. The lock is held only for a
// check and a rename, so waiting for it is short and not cancellable.
func lock(rootfd int) (unlock func(), err error) {
	// Read-only is enough for flock, and works on a lock file created
	// by another user.
	fd, err := openat(rootfd, lockName, unix.O_RDONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: lockName, Err: err}
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "flock", Path: lockName, Err: err}
	}
	return func() {
		unix.Flock(fd, unix.LOCK_UN)
		unix.Close(fd)
	}, nil
}
