package vmdisk

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Tools are the programs Assemble runs (Debian packages dosfstools,
// mtools, e2fsprogs, gdisk, qemu-utils).
var Tools = []string{"mkfs.vfat", "mcopy", "mkfs.ext4", "sgdisk", "qemu-img", "du"}

// DiskOptions describe a disk for Assemble.
type DiskOptions struct {
	// ESPDir is copied onto the EFI system partition (it holds
	// EFI/BOOT/BOOTX64.EFI, the kernel, ...).
	ESPDir string
	// ESPMiB is the EFI system partition's size (default 128).
	ESPMiB int64
	// RootDir, if set, becomes the ext4 root partition (ownership and
	// modes kept: run as root), with FreeMiB of free space (default 256).
	RootDir string
	FreeMiB int64
	// RootPartUUID is the root partition's GPT unique GUID (the kernel
	// finds it with root=PARTUUID=...); random when empty.
	RootPartUUID string
	// Out is the qcow2 file written.
	Out string
	// Compress writes zlib-compressed qcow2 clusters (smaller, slower).
	Compress bool
}

const mib = 1 << 20

// Assemble writes a GPT disk (an EFI system partition and, with RootDir,
// an ext4 root partition) as a qcow2 image, mounting nothing: the file
// systems are made in files (mkfs.vfat + mcopy, mkfs.ext4 -d), the
// partition table with sgdisk, and the partitions copied in at their
// offsets.
func Assemble(ctx context.Context, o DiskOptions) error {
	for _, t := range Tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("assemble a VM disk: %s not found: install dosfstools mtools e2fsprogs gdisk qemu-utils (scripts/install-deps.sh)", t)
		}
	}
	if o.ESPMiB == 0 {
		o.ESPMiB = 128
	}
	if o.FreeMiB == 0 {
		o.FreeMiB = 256
	}
	tmp, err := os.MkdirTemp(filepath.Dir(o.Out), ".disk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
		}
		return nil
	}

	esp := filepath.Join(tmp, "esp.img")
	if err := truncate(esp, o.ESPMiB*mib); err != nil {
		return err
	}
	if err := run("mkfs.vfat", "-n", "ESP", esp); err != nil {
		return err
	}
	entries, err := os.ReadDir(o.ESPDir)
	if err != nil {
		return fmt.Errorf("EFI system partition contents: %w", err)
	}
	for _, e := range entries {
		if err := run("mcopy", "-s", "-p", "-i", esp, filepath.Join(o.ESPDir, e.Name()), "::/"); err != nil {
			return err
		}
	}

	var rootMiB int64
	root := filepath.Join(tmp, "root.img")
	if o.RootDir != "" {
		out, err := exec.CommandContext(ctx, "du", "-s", "--block-size=1M", o.RootDir).Output()
		if err != nil {
			return fmt.Errorf("du %s: %w", o.RootDir, err)
		}
		used, _ := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
		rootMiB = used + used/5 + o.FreeMiB
		if err := run("mkfs.ext4", "-q", "-F", "-L", "root", "-d", o.RootDir, root, strconv.FormatInt(rootMiB, 10)+"M"); err != nil {
			return err
		}
	}

	// Layout: 1 MiB for the GPT, the ESP, the root, 1 MiB for the backup GPT.
	espStart := int64(mib / sector)
	rootStart := espStart + o.ESPMiB*mib/sector
	total := (o.ESPMiB + rootMiB + 2) * mib
	raw := filepath.Join(tmp, "disk.raw")
	if err := truncate(raw, total); err != nil {
		return err
	}
	args := []string{"-o", "-n", fmt.Sprintf("1:%d:%d", espStart, rootStart-1), "-t", "1:ef00", "-c", "1:ESP"}
	if o.RootDir != "" {
		args = append(args, "-n", fmt.Sprintf("2:%d:%d", rootStart, rootStart+rootMiB*mib/sector-1), "-t", "2:8304", "-c", "2:root")
		if o.RootPartUUID != "" {
			args = append(args, "-u", "2:"+o.RootPartUUID)
		}
	}
	if err := run("sgdisk", append(args, raw)...); err != nil {
		return err
	}
	if err := copyAt(raw, esp, espStart*sector); err != nil {
		return err
	}
	if o.RootDir != "" {
		if err := copyAt(raw, root, rootStart*sector); err != nil {
			return err
		}
	}
	conv := []string{"convert", "-f", "raw", "-O", "qcow2"}
	if o.Compress {
		conv = append(conv, "-c")
	}
	part := o.Out + ".part"
	if err := run("qemu-img", append(conv, raw, part)...); err != nil {
		return err
	}
	return os.Rename(part, o.Out)
}

func truncate(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copyAt writes the file src into dst at offset off, keeping holes sparse
// where src has zeros.
func copyAt(dst, src string, off int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	buf := make([]byte, mib)
	zero := make([]byte, mib)
	for pos := int64(0); ; {
		n, rerr := in.Read(buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := out.WriteAt(buf[:n], off+pos); err != nil {
				out.Close()
				return err
			}
		}
		pos += int64(n)
		if rerr != nil {
			break
		}
	}
	return out.Close()
}
