// Package vmdisk checks that a VM disk (qcow2) can boot under UEFI, as
// Incus boots VMs, and assembles such disks from a root filesystem tree
// without mounting anything (mkfs.vfat + mtools, mkfs.ext4 -d, sgdisk,
// qemu-img).
package vmdisk

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// qcow2 reads the guest-visible bytes of a qcow2 image: enough of the
// format to read a disk qemu-img wrote (versions 2 and 3, zlib-compressed
// or plain clusters, no backing file, no encryption).
type qcow2 struct {
	f           io.ReaderAt
	clusterBits uint32
	size        int64 // virtual disk size
	l1          []uint64
}

var qcow2Magic = []byte("QFI\xfb")

func openQCOW2(f io.ReaderAt) (*qcow2, error) {
	h := make([]byte, 112)
	if n, _ := f.ReadAt(h, 0); n < 72 {
		return nil, errors.New("not a qcow2 image: shorter than a qcow2 header")
	}
	be := binary.BigEndian
	if !bytes.Equal(h[:4], qcow2Magic) {
		return nil, errors.New("not a qcow2 image (no QFI\\xfb magic)")
	}
	version := be.Uint32(h[4:])
	if version != 2 && version != 3 {
		return nil, fmt.Errorf("qcow2 version %d: only versions 2 and 3 are supported", version)
	}
	if be.Uint64(h[8:]) != 0 {
		return nil, errors.New("the qcow2 image has a backing file: publish a self-contained disk (qemu-img convert -O qcow2)")
	}
	q := &qcow2{f: f, clusterBits: be.Uint32(h[20:]), size: int64(be.Uint64(h[24:]))}
	if q.clusterBits < 9 || q.clusterBits > 21 {
		return nil, fmt.Errorf("qcow2 cluster size 2^%d is out of range", q.clusterBits)
	}
	if be.Uint32(h[32:]) != 0 {
		return nil, errors.New("the qcow2 image is encrypted: Incus cannot boot it")
	}
	if version == 3 && be.Uint32(h[100:]) >= 105 && h[104] != 0 {
		return nil, errors.New("the qcow2 image uses zstd compression: re-create it with zlib (qemu-img convert -c -o compression_type=zlib)")
	}
	l1Size, l1Off := be.Uint32(h[36:]), int64(be.Uint64(h[40:]))
	if l1Size > 1<<24 {
		return nil, fmt.Errorf("qcow2 L1 table of %d entries is implausible", l1Size)
	}
	raw := make([]byte, 8*int(l1Size))
	if _, err := f.ReadAt(raw, l1Off); err != nil {
		return nil, fmt.Errorf("qcow2 L1 table: %w", err)
	}
	q.l1 = make([]uint64, l1Size)
	for i := range q.l1 {
		q.l1[i] = be.Uint64(raw[8*i:])
	}
	return q, nil
}

const offsetMask = 0x00fffffffffffe00 // bits 9-55: a host offset

// ReadAt reads guest bytes; unallocated clusters read as zeros.
func (q *qcow2) ReadAt(p []byte, off int64) (int, error) {
	cs := int64(1) << q.clusterBits
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= q.size {
			return n, io.EOF
		}
		cluster, err := q.cluster(pos >> q.clusterBits)
		if err != nil {
			return n, err
		}
		in := pos & (cs - 1)
		m := copy(p[n:], cluster[in:])
		if rest := q.size - pos; int64(m) > rest {
			m = int(rest)
		}
		n += m
	}
	return n, nil
}

// cluster returns guest cluster i's bytes.
func (q *qcow2) cluster(i int64) ([]byte, error) {
	cs := int64(1) << q.clusterBits
	out := make([]byte, cs)
	l2Entries := cs / 8
	l1i, l2i := i/l2Entries, i%l2Entries
	if l1i >= int64(len(q.l1)) {
		return out, nil
	}
	l2Off := int64(q.l1[l1i] & offsetMask)
	if l2Off == 0 {
		return out, nil
	}
	var e [8]byte
	if _, err := q.f.ReadAt(e[:], l2Off+8*l2i); err != nil {
		return nil, fmt.Errorf("qcow2 L2 table: %w", err)
	}
	entry := binary.BigEndian.Uint64(e[:])
	if entry&(1<<62) != 0 { // compressed
		x := 62 - (q.clusterBits - 8)
		host := int64(entry & (1<<x - 1))
		sectors := int64((entry>>x)&(1<<(q.clusterBits-8)-1)) + 1
		comp := make([]byte, sectors*512-(host&511))
		if n, err := q.f.ReadAt(comp, host); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return nil, fmt.Errorf("qcow2 compressed cluster: %w", err)
		}
		if _, err := io.ReadFull(flate.NewReader(bytes.NewReader(comp)), out); err != nil {
			return nil, fmt.Errorf("qcow2 compressed cluster %d: %w", i, err)
		}
		return out, nil
	}
	host := int64(entry & offsetMask)
	if host == 0 || entry&1 != 0 { // unallocated or all zeros
		return out, nil
	}
	if _, err := q.f.ReadAt(out, host); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("qcow2 cluster %d: %w", i, err)
	}
	return out, nil
}
