package vmdisk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// fat reads files from a FAT12/16/32 file system: just enough to find the
// UEFI boot loader by its path.
type fat struct {
	r                  io.ReaderAt
	base               int64 // partition offset
	bps, spc           int64 // bytes per sector, sectors per cluster
	fatOff, dataOff    int64 // byte offsets within the partition
	rootOff, rootBytes int64 // FAT12/16 fixed root directory
	rootCluster        uint32
	bits               int // 12, 16 or 32
}

func openFAT(r io.ReaderAt, base int64) (*fat, error) {
	b := make([]byte, 512)
	if _, err := r.ReadAt(b, base); err != nil {
		return nil, fmt.Errorf("read the EFI system partition: %w", err)
	}
	le := binary.LittleEndian
	if b[510] != 0x55 || b[511] != 0xaa {
		return nil, errors.New("the EFI system partition holds no FAT file system (no boot sector signature): format it with mkfs.vfat")
	}
	f := &fat{r: r, base: base, bps: int64(le.Uint16(b[11:])), spc: int64(b[13])}
	if f.bps < 512 || f.bps > 4096 || f.spc == 0 {
		return nil, errors.New("the EFI system partition's FAT boot sector is damaged")
	}
	reserved, nfats, rootEntries := int64(le.Uint16(b[14:])), int64(b[16]), int64(le.Uint16(b[17:]))
	total, fatSize := int64(le.Uint16(b[19:])), int64(le.Uint16(b[22:]))
	if total == 0 {
		total = int64(le.Uint32(b[32:]))
	}
	if fatSize == 0 {
		fatSize = int64(le.Uint32(b[36:]))
		f.rootCluster = le.Uint32(b[44:])
	}
	rootSectors := (rootEntries*32 + f.bps - 1) / f.bps
	f.fatOff = reserved * f.bps
	f.rootOff = (reserved + nfats*fatSize) * f.bps
	f.rootBytes = rootSectors * f.bps
	f.dataOff = f.rootOff + f.rootBytes
	clusters := (total - reserved - nfats*fatSize - rootSectors) / f.spc
	switch {
	case clusters < 4085:
		f.bits = 12
	case clusters < 65525:
		f.bits = 16
	default:
		f.bits = 32
	}
	return f, nil
}

// next returns the cluster after c in its chain, or 0 at the end.
func (f *fat) next(c uint32) (uint32, error) {
	var b [4]byte
	le := binary.LittleEndian
	switch f.bits {
	case 12:
		off := int64(c) + int64(c)/2
		if _, err := f.r.ReadAt(b[:2], f.base+f.fatOff+off); err != nil {
			return 0, err
		}
		v := uint32(le.Uint16(b[:]))
		if c&1 == 1 {
			v >>= 4
		}
		if v &= 0xfff; v >= 0xff8 {
			return 0, nil
		}
		return v, nil
	case 16:
		if _, err := f.r.ReadAt(b[:2], f.base+f.fatOff+2*int64(c)); err != nil {
			return 0, err
		}
		if v := uint32(le.Uint16(b[:])); v < 0xfff8 {
			return v, nil
		}
		return 0, nil
	}
	if _, err := f.r.ReadAt(b[:], f.base+f.fatOff+4*int64(c)); err != nil {
		return 0, err
	}
	if v := le.Uint32(b[:]) & 0x0fffffff; v < 0x0ffffff8 {
		return v, nil
	}
	return 0, nil
}

// readChain reads up to max bytes of the cluster chain starting at c.
func (f *fat) readChain(c uint32, max int64) ([]byte, error) {
	cs := f.bps * f.spc
	var out []byte
	for n := 0; c >= 2 && int64(len(out)) < max; n++ {
		if n > 1<<20 {
			return nil, errors.New("FAT cluster chain loops")
		}
		buf := make([]byte, cs)
		if _, err := f.r.ReadAt(buf, f.base+f.dataOff+int64(c-2)*cs); err != nil {
			return nil, err
		}
		out = append(out, buf...)
		var err error
		if c, err = f.next(c); err != nil {
			return nil, err
		}
	}
	if int64(len(out)) > max {
		out = out[:max]
	}
	return out, nil
}

// entry is a directory entry.
type entry struct {
	dir     bool
	cluster uint32
	size    int64
}

// lookup finds the entry at path (components matched against 8.3 short
// names, case-insensitively).
func (f *fat) lookup(path string) (entry, error) {
	var dir []byte
	var err error
	if f.bits == 32 {
		dir, err = f.readChain(f.rootCluster, 1<<20)
	} else {
		dir = make([]byte, f.rootBytes)
		_, err = f.r.ReadAt(dir, f.base+f.rootOff)
	}
	if err != nil {
		return entry{}, err
	}
	parts := strings.Split(path, "/")
	for i, name := range parts {
		e, ok := findEntry(dir, name)
		if !ok {
			return entry{}, fmt.Errorf("no %s", strings.Join(parts[:i+1], "/"))
		}
		if i == len(parts)-1 {
			return e, nil
		}
		if !e.dir {
			return entry{}, fmt.Errorf("%s is not a folder", strings.Join(parts[:i+1], "/"))
		}
		if dir, err = f.readChain(e.cluster, 1<<20); err != nil {
			return entry{}, err
		}
	}
	return entry{}, errors.New("empty path")
}

func findEntry(dir []byte, name string) (entry, bool) {
	base, ext, _ := strings.Cut(strings.ToUpper(name), ".")
	want := fmt.Sprintf("%-8s%-3s", base, ext)
	le := binary.LittleEndian
	for i := 0; i+32 <= len(dir); i += 32 {
		e := dir[i : i+32]
		switch {
		case e[0] == 0:
			return entry{}, false
		case e[0] == 0xe5 || e[11] == 0x0f || e[11]&0x08 != 0:
			continue
		}
		if string(e[:11]) == want {
			return entry{dir: e[11]&0x10 != 0, cluster: uint32(le.Uint16(e[20:]))<<16 | uint32(le.Uint16(e[26:])), size: int64(le.Uint32(e[28:]))}, true
		}
	}
	return entry{}, false
}
