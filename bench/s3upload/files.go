package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/incus-appliance/registry/internal/image"
)

// writeRoot writes a fake squashfs (valid superblock magic and size,
// incompressible random payload) of size bytes.
func writeRoot(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	head := make([]byte, 96)
	copy(head, "hsqs")
	binary.LittleEndian.PutUint64(head[40:], uint64(size))
	w.Write(head)
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 1<<20)
	for left := size - int64(len(head)); left > 0; left -= int64(len(buf)) {
		rng.Read(buf)
		w.Write(buf[:min(left, int64(len(buf)))])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// writeMetadata writes an incus.tar.xz whose creation_date is created.
func writeMetadata(path string, created time.Time) error {
	yaml := fmt.Sprintf("architecture: x86_64\ncreation_date: %d\nproperties:\n  os: bench\n  release: \"1\"\n  variant: default\n  description: upload benchmark\n", created.Unix())
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := image.WriteMetadataTarball(f, []byte(yaml), nil); err != nil {
		return err
	}
	return f.Close()
}
