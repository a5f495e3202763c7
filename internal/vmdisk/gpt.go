package vmdisk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// espType is the EFI system partition's type GUID
// (C12A7328-F81F-11D2-BA4B-00A0C93EC93B) as GPT stores it.
var espType = []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}

const sector = 512

// findESP returns the byte offset and size of the disk's EFI system
// partition.
func findESP(d io.ReaderAt) (off, size int64, err error) {
	h := make([]byte, sector)
	if _, err := d.ReadAt(h, sector); err != nil {
		return 0, 0, fmt.Errorf("read the partition table: %w", err)
	}
	if string(h[:8]) != "EFI PART" {
		return 0, 0, errors.New("no GPT partition table: Incus boots VMs with UEFI, which needs a GPT disk with an EFI system partition")
	}
	le := binary.LittleEndian
	entriesLBA, count, esize := int64(le.Uint64(h[72:])), le.Uint32(h[80:]), le.Uint32(h[84:])
	if esize < 128 || esize > 4096 || count > 1024 {
		return 0, 0, fmt.Errorf("GPT header with %d entries of %d bytes is implausible", count, esize)
	}
	tab := make([]byte, int(count)*int(esize))
	if _, err := d.ReadAt(tab, entriesLBA*sector); err != nil {
		return 0, 0, fmt.Errorf("read the GPT entries: %w", err)
	}
	for i := 0; i < int(count); i++ {
		e := tab[i*int(esize):]
		if bytes.Equal(e[:16], espType) {
			first, last := int64(le.Uint64(e[32:])), int64(le.Uint64(e[40:]))
			if last < first {
				return 0, 0, fmt.Errorf("EFI system partition %d ends before it starts", i+1)
			}
			return first * sector, (last - first + 1) * sector, nil
		}
	}
	return 0, 0, errors.New("the GPT has no EFI system partition (type EF00): the UEFI firmware finds nothing to boot")
}
