package dirstore

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/incus-appliance/registry/internal/store"
)

// mapErr is the one place where native errors become store sentinels; it
// also adds the "op key" context, once.
func mapErr(op, key string, err error) error {
	switch {
	case errors.Is(err, store.ErrInvalidKey):
		return fmt.Errorf("%s: %w", op, err) // the error names the key already
	case errors.Is(err, syscall.ENAMETOOLONG):
		return fmt.Errorf("%s %s: %w: a path segment is too long for the file system", op, key, store.ErrInvalidKey)
	case op != "put" && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)):
		// A missing file, or a file where a directory should be, means
		// the object does not exist. (For put a missing path is never
		// the object: IfMatch returns store.ErrNotFound itself.)
		return fmt.Errorf("%s %s: %w", op, key, store.ErrNotFound)
	default:
		return fmt.Errorf("%s %s: %w", op, key, err)
	}
}
