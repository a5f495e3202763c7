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
var Tools = []string{"mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs", "sgdisk", "qemu-img", "du"}

// DiskOptions describe a disk for Assemble.
type DiskOptions struct {
	// ESPDir is copied onto the EFI system partition (it holds
	// EFI/BOOT/BOOTX64.EFI, the kernel, ...).
	ESPDir string
	// ESPMiB is the EFI system partition's size (default 128).
	ESPMiB int64
	// RootDir, if set, becomes the ext4 root partition (ownership and
	// modes kept: run as root), with at least FreeMiB of free space
	// (default 256).
	RootDir string
	FreeMiB int64
	// Identity, when set, makes the disk reproducible (reproducible.go):
	// its GUIDs and UUIDs derive from it (the root partition's is
	// RootPartUUID(Identity), which the kernel finds the root by), and no
	// time it records is later than Epoch (modification times of ESPDir
	// newer than Epoch are clamped to it, in place). Without it the disk
	// tools draw random identifiers and record the time.
	Identity string
	Epoch    int64
	// Out is the qcow2 file written.
	Out string
	// Compress writes zlib-compressed qcow2 clusters (smaller; each
	// cluster on its own, so a small change still makes a small delta).
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
	env := append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if o.Identity != "" {
		env = append(env, "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(o.Epoch, 10))
		if err := clampTimes(o.ESPDir, o.Epoch); err != nil {
			return err
		}
	}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
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
	vfat := []string{"-n", "ESP", esp}
	if o.Identity != "" {
		vfat = append([]string{"--invariant"}, vfat...)
	}
	if err := run("mkfs.vfat", vfat...); err != nil {
		return err
	}
	entries, err := os.ReadDir(o.ESPDir)
	if err != nil {
		return fmt.Errorf("EFI system partition contents: %w", err)
	}
	for _, e := range entries {
		if err := run("mcopy", "-s", "-p", "-m", "-i", esp, filepath.Join(o.ESPDir, e.Name()), "::/"); err != nil {
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
		ext4 := []string{"-q", "-F", "-L", "root", "-d", o.RootDir}
		if o.Identity != "" {
			rootMiB = roundUp(rootMiB, rootSizeStep)
			ext4 = append(ext4, "-U", guid(o.Identity, "root file system"), "-E", "hash_seed="+guid(o.Identity, "root directory hash"))
		}
		if err := run("mkfs.ext4", append(ext4, root, strconv.FormatInt(rootMiB, 10)+"M")...); err != nil {
			return err
		}
		if o.Identity != "" {
			script := filepath.Join(tmp, "times.debugfs")
			if err := timesScript(o.RootDir, script, o.Epoch); err != nil {
				return err
			}
			if err := run("debugfs", "-w", "-f", script, root); err != nil {
				return err
			}
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
	}
	if o.Identity != "" {
		args = append(args, "-U", guid(o.Identity, "disk"), "-u", "1:"+guid(o.Identity, "EFI system partition"))
		if o.RootDir != "" {
			args = append(args, "-u", "2:"+RootPartUUID(o.Identity))
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
