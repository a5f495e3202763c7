package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
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
	if err := f.Sync(); err != nil { // written back before anything is timed
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

// writeAppliance writes a minimal appliance folder dir/name (amd64 only).
func writeAppliance(dir, name string) error {
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	yaml := "name: " + name + "\ndescription: upload benchmark\nversion: 1.0.0\narchitectures: [amd64]\nbase: debian/bookworm\nhealthcheck:\n  command: [\"true\"]\n"
	if err := os.WriteFile(filepath.Join(d, "appliance.yaml"), []byte(yaml), 0o644); err != nil {
		return err
	}
	// A base of its own (the appliance is never built here).
	bases := filepath.Join(dir, "_bases")
	if err := os.MkdirAll(bases, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bases, "debian-bookworm.yaml"), []byte("image: {distribution: debian, release: bookworm}\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, "image.yaml"), []byte("packages: []\n"), 0o644)
}
