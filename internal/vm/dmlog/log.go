// Package dmlog checks copy-on-write overlays against real power cuts:
// a guest (./guest, the /init of a test initramfs) runs overlay requests
// on ext4 over a device-mapper log-writes device, which records every
// write, flush and FUA of the file system in order on a second disk; the
// host replays that log onto the file system's first image up to every
// Sync's mark and to points between them (each prefix is a state a power
// cut may leave), lets e2fsck replay ext4's journal, copies the state
// directory out with debugfs, and checks what the overlay reads there.
//
// This file reads the log, in the format of the kernel's
// drivers/md/dm-log-writes.c (Documentation/admin-guide/device-mapper/
// log-writes.rst): a super block in the log's first sector, then one
// entry per write, flush, discard or mark, each in a sector of its own,
// a write's data in the sectors after it.
package dmlog

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Entry flags (LOG_*_FLAG).
const (
	FlagFlush    = 1 << 0
	FlagFUA      = 1 << 1
	FlagDiscard  = 1 << 2
	FlagMark     = 1 << 3
	FlagMetadata = 1 << 4
)

// logMagic is WRITE_LOG_MAGIC; logVersion WRITE_LOG_VERSION.
const (
	logMagic   = 0x6a736677736872
	logVersion = 1
	superLen   = 28
	entryLen   = 32
	maxSector  = 1 << 16
)

// Entry is one logged request.
type Entry struct {
	// Sector and Sectors are the request's range in the log's sectors.
	Sector, Sectors uint64
	Flags           uint64
	// Mark is a mark's name.
	Mark string
	// data is the log offset of a write's data.
	data int64
}

// Log is a parsed log.
type Log struct {
	r          io.ReaderAt
	SectorSize int64
	Entries    []Entry
}

// ReadLog parses the log on r. The super block (little-endian):
//
//	0  u64 magic 0x6a736677736872
//	8  u64 version (1)
//	16 u64 number of entries
//	24 u32 sector size
//
// each entry, at the start of a sector:
//
//	0  u64 sector
//	8  u64 number of sectors
//	16 u64 flags
//	24 u64 data length: a mark's name, which follows at 32
func ReadLog(r io.ReaderAt) (*Log, error) {
	var sb [superLen]byte
	if _, err := r.ReadAt(sb[:], 0); err != nil {
		return nil, fmt.Errorf("read log super block: %w", err)
	}
	if m := binary.LittleEndian.Uint64(sb[0:]); m != logMagic {
		return nil, fmt.Errorf("log super block: magic %#x, want %#x", m, uint64(logMagic))
	}
	if v := binary.LittleEndian.Uint64(sb[8:]); v != logVersion {
		return nil, fmt.Errorf("log super block: version %d, want %d", v, logVersion)
	}
	n := binary.LittleEndian.Uint64(sb[16:])
	ss := int64(binary.LittleEndian.Uint32(sb[24:]))
	if ss < 512 || ss > maxSector || ss&(ss-1) != 0 {
		return nil, fmt.Errorf("log super block: sector size %d", ss)
	}
	if n > 1<<26 {
		return nil, fmt.Errorf("log super block: %d entries: too many", n)
	}
	l := &Log{r: r, SectorSize: ss, Entries: make([]Entry, 0, n)}
	pos := ss
	buf := make([]byte, ss)
	for i := range n {
		if _, err := r.ReadAt(buf, pos); err != nil {
			return nil, fmt.Errorf("log entry %d at %d: %w", i, pos, err)
		}
		e := Entry{
			Sector:  binary.LittleEndian.Uint64(buf[0:]),
			Sectors: binary.LittleEndian.Uint64(buf[8:]),
			Flags:   binary.LittleEndian.Uint64(buf[16:]),
		}
		dlen := binary.LittleEndian.Uint64(buf[24:])
		pos += ss
		switch {
		case e.Flags&FlagMark != 0:
			if dlen > uint64(ss-entryLen) {
				return nil, fmt.Errorf("log entry %d: mark of %d bytes", i, dlen)
			}
			e.Mark = string(buf[entryLen : entryLen+dlen])
		case e.Flags&FlagDiscard != 0:
		case e.Sectors > 0:
			if e.Sectors > 1<<24 {
				return nil, fmt.Errorf("log entry %d: %d sectors", i, e.Sectors)
			}
			e.data = pos
			pos += int64(e.Sectors) * ss
		}
		l.Entries = append(l.Entries, e)
	}
	return l, nil
}

// Replay applies entries [from, to) to dev: writes are written, discards
// zeroed (what a device that zeroes discarded sectors returns).
func (l *Log) Replay(dev io.WriterAt, from, to int) error {
	var zero []byte
	for i := from; i < to; i++ {
		e := l.Entries[i]
		n := int64(e.Sectors) * l.SectorSize
		off := int64(e.Sector) * l.SectorSize
		switch {
		case e.Flags&FlagMark != 0 || n == 0:
			continue
		case e.Flags&FlagDiscard != 0:
			if int64(len(zero)) < n {
				zero = make([]byte, n)
			}
			if _, err := dev.WriteAt(zero[:n], off); err != nil {
				return fmt.Errorf("replay discard %d: %w", i, err)
			}
		default:
			buf := make([]byte, n)
			if _, err := l.r.ReadAt(buf, e.data); err != nil {
				return fmt.Errorf("replay entry %d: read data: %w", i, err)
			}
			if _, err := dev.WriteAt(buf, off); err != nil {
				return fmt.Errorf("replay entry %d: %w", i, err)
			}
		}
	}
	return nil
}
