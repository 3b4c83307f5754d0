package media

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// FAT12/16 layout (Microsoft's FAT specification): the boot sector's BIOS
// parameter block, and the 32-byte root directory entries.
const (
	bpbBytesPerSector = 11 // u16
	bpbReserved       = 14 // u16 reserved sectors before the first FAT
	bpbNumFATs        = 16 // u8
	bpbRootEntries    = 17 // u16; 0 on FAT32 (its root is a cluster chain)
	bpbSectorsPerFAT  = 22 // u16; 0 on FAT32
	bootSignature     = 510

	dirEntrySize    = 32
	dirAttr         = 11 // u8
	dirCreateTenths = 13 // u8, 0-199
	dirCreateTime   = 14 // u16
	dirCreateDate   = 16 // u16
	dirAccessDate   = 18 // u16
	dirWriteTime    = 22 // u16
	dirWriteDate    = 24 // u16

	attrLongName = 0x0f
	entryFree    = 0xe5
	entryEnd     = 0x00

	maxRootEntries = 4096 // more than any FAT12/16 formatter makes
)

// dosDateTime encodes t (UTC) as FAT's date and time (2-second steps).
func dosDateTime(t time.Time) (date, tm uint16) {
	t = t.UTC()
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	tm = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return date, tm
}

// rootDir is where a FAT12/16 root directory lies in an image.
func rootDir(boot []byte) (off int64, size int, err error) {
	if len(boot) < 512 || boot[bootSignature] != 0x55 || boot[bootSignature+1] != 0xaa {
		return 0, 0, fmt.Errorf("no FAT boot sector (signature 55 AA missing)")
	}
	bps := int64(binary.LittleEndian.Uint16(boot[bpbBytesPerSector:]))
	reserved := int64(binary.LittleEndian.Uint16(boot[bpbReserved:]))
	fats := int64(boot[bpbNumFATs])
	entries := int(binary.LittleEndian.Uint16(boot[bpbRootEntries:]))
	spf := int64(binary.LittleEndian.Uint16(boot[bpbSectorsPerFAT:]))
	switch {
	case bps < 512 || bps > 4096 || bps&(bps-1) != 0:
		return 0, 0, fmt.Errorf("FAT bytes per sector %d: want a power of two, 512-4096", bps)
	case entries == 0 || spf == 0:
		return 0, 0, fmt.Errorf("not FAT12/16 (no fixed root directory)")
	case entries > maxRootEntries:
		return 0, 0, fmt.Errorf("FAT root directory of %d entries: more than %d", entries, maxRootEntries)
	case fats == 0:
		return 0, 0, fmt.Errorf("FAT count 0")
	}
	return (reserved + fats*spf) * bps, entries * dirEntrySize, nil
}

// stampRootTimes sets every timestamp of the entries in a FAT12/16 image's
// root directory to t. Installers that write files with the current time
// (syslinux) leave nothing else time-dependent there.
func stampRootTimes(img io.ReaderAt, w io.WriterAt, t time.Time) error {
	boot := make([]byte, 512)
	if _, err := img.ReadAt(boot, 0); err != nil {
		return fmt.Errorf("read FAT boot sector: %w", err)
	}
	off, size, err := rootDir(boot)
	if err != nil {
		return err
	}
	dir := make([]byte, size)
	if _, err := img.ReadAt(dir, off); err != nil {
		return fmt.Errorf("read FAT root directory at %d: %w", off, err)
	}
	stampEntries(dir, t)
	if _, err := w.WriteAt(dir, off); err != nil {
		return fmt.Errorf("write FAT root directory at %d: %w", off, err)
	}
	return nil
}

// stampEntries sets the timestamps of the used short-name entries in dir.
func stampEntries(dir []byte, t time.Time) {
	date, tm := dosDateTime(t)
	for i := 0; i+dirEntrySize <= len(dir); i += dirEntrySize {
		e := dir[i : i+dirEntrySize]
		if e[0] == entryEnd {
			return
		}
		if e[0] == entryFree || e[dirAttr]&0x3f == attrLongName {
			continue
		}
		e[dirCreateTenths] = 0
		binary.LittleEndian.PutUint16(e[dirCreateTime:], tm)
		binary.LittleEndian.PutUint16(e[dirCreateDate:], date)
		binary.LittleEndian.PutUint16(e[dirAccessDate:], date)
		binary.LittleEndian.PutUint16(e[dirWriteTime:], tm)
		binary.LittleEndian.PutUint16(e[dirWriteDate:], date)
	}
}
