package vmdisk

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Reproducible disks: Assemble with DiskOptions.Identity writes the same
// disk, byte for byte, from the same trees, and a small change to a tree
// changes few bytes of it (small deltas between versions):
//   - every identifier a disk tool would draw at random (the disk's and
//     the partitions' GPT GUIDs, the ext4 UUID and directory hash seed)
//     derives from the identity (guid), and the FAT volume ID and times are
//     mkfs.vfat's invariant ones;
//   - every time the disk records is at most the epoch: modification times
//     newer than it are clamped to it (as mksquashfs does with
//     SOURCE_DATE_EPOCH: clampTimes on the EFI system partition's tree
//     before mcopy -m, debugfs on the ext4 root after mke2fs -d, which
//     copies the tree's times), access and change times of the root's
//     inodes are the epoch (timesScript), and mke2fs and debugfs run with
//     E2FSPROGS_FAKE_TIME;
//   - the root file system's size is rounded up (rootSizeStep), so a
//     small change to the tree does not move the file system's layout;
//   - compression (Compress) keeps that: qemu-img compresses each qcow2
//     cluster on its own, deterministically, so a changed file changes its
//     clusters only; the later ones move, and a VCDIFF delta copies them
//     from their old place (nginx's disk, one changed file: a 6.4 KB delta
//     compressed, 275 MB; 1.6 KB uncompressed, 420 MB).

// guid derives a GUID in RFC 4122 version 4 form from identity and role.
func guid(identity, role string) string {
	b := sha256.Sum256([]byte(identity + "\x00" + role))
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// RootPartUUID is the GPT unique GUID of the root partition of a disk
// assembled with identity: a boot entry names the root by it
// (root=PARTUUID=...).
func RootPartUUID(identity string) string { return guid(identity, "root partition") }

// rootSizeStep is the granularity of the root file system's size: a tree
// that grows or shrinks a little keeps the same size, so the same block
// groups (unused space costs nothing in a qcow2).
const rootSizeStep = 256

// roundUp rounds n up to a multiple of step.
func roundUp(n, step int64) int64 { return (n + step - 1) / step * step }

// clampTimes sets the modification times newer than epoch of every file
// under dir (symbolic links themselves, not their targets) to epoch; it
// leaves access times alone (the FAT file system has none).
func clampTimes(dir string, epoch int64) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mtime, err := modTime(path)
		if err != nil || mtime <= epoch {
			return err
		}
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Sec: epoch}}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set the time of %s: %w", path, err)
		}
		return nil
	})
}

// modTime is path's modification time in seconds (a link's own).
func modTime(path string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return 0, err
	}
	return st.Mtim.Sec, nil
}

// timesScript writes, for debugfs -f, the commands that give every
// inode of the ext4 file system mke2fs -d made from dir (and its root)
// the times of a reproducible disk: mke2fs copies the tree's times, and
// the change and access times are the build's clock (reading the tree,
// as mke2fs does, sets the access times of its directories). Access and
// change times become epoch, modification times newer than it epoch. The
// tree is left as it is.
func timesScript(dir, script string, epoch int64) error {
	f, err := os.Create(script)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	at := "@" + strconv.FormatInt(epoch, 10)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		name := "/" + filepath.ToSlash(rel)
		if rel == "." {
			name = "/"
		}
		if strings.ContainsAny(name, "\"\\\n") {
			return fmt.Errorf("%s: a file name with a quote, backslash or newline cannot be given to debugfs", path)
		}
		fmt.Fprintf(w, "set_inode_field \"%s\" ctime %s\nset_inode_field \"%s\" atime %s\n", name, at, name, at)
		mtime, err := modTime(path)
		if err == nil && mtime > epoch {
			_, err = fmt.Fprintf(w, "set_inode_field \"%s\" mtime %s\n", name, at)
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
