package cow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"os"
	"path/filepath"

	"github.com/nbdboot/nbdboot/internal/disk"
)

// File names inside an overlay directory.
const (
	dataName    = "data"
	mapName     = "map"
	journalName = "journal"
	tmpSuffix   = ".tmp"
)

const (
	mapMagic     = "NBDCOWMP"
	journalMagic = "NBDCOWJL"
	formatV1     = 1
	mapHdrLen    = 48
	jHdrLen      = 32
	recLen       = 24
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a state file that fails its checks.
var errCorrupt = errors.New("corrupt overlay state")

// mapHeader is the fixed part of the map file (little-endian):
//
//	0  [8]byte magic "NBDCOWMP"
//	8  u32     format version (1)
//	12 u32     log2 of the block size
//	16 u64     base (and export) size in bytes
//	24 u64     generation
//	32 u64     payload length in bytes (4 per 16 blocks)
//	40 u32     CRC-32C of the payload
//	44 u32     CRC-32C of bytes 0..43
//
// The payload follows: little-endian u32 words, block i in bits
// 2*(i%16)..2*(i%16)+1 of word i/16, 0 = Base, 1 = Data, 2 = Zero.
type mapHeader struct {
	blockShift uint32
	size       int64
	gen        uint64
}

func encodeMap(h mapHeader, m *stateMap) []byte {
	payload := len(m.words) * 4
	buf := make([]byte, mapHdrLen+payload)
	for i := range m.words {
		binary.LittleEndian.PutUint32(buf[mapHdrLen+4*i:], m.words[i].Load())
	}
	copy(buf[0:8], mapMagic)
	binary.LittleEndian.PutUint32(buf[8:], formatV1)
	binary.LittleEndian.PutUint32(buf[12:], h.blockShift)
	binary.LittleEndian.PutUint64(buf[16:], uint64(h.size))
	binary.LittleEndian.PutUint64(buf[24:], h.gen)
	binary.LittleEndian.PutUint64(buf[32:], uint64(payload))
	binary.LittleEndian.PutUint32(buf[40:], crc32.Checksum(buf[mapHdrLen:], castagnoli))
	binary.LittleEndian.PutUint32(buf[44:], crc32.Checksum(buf[:44], castagnoli))
	return buf
}

// decodeMap checks buf against the expected geometry and fills m.
func decodeMap(buf []byte, want mapHeader, m *stateMap) (gen uint64, err error) {
	if len(buf) < mapHdrLen {
		return 0, fmt.Errorf("%w: map is %d bytes, shorter than its %d-byte header", errCorrupt, len(buf), mapHdrLen)
	}
	if string(buf[0:8]) != mapMagic {
		return 0, fmt.Errorf("%w: map magic %q", errCorrupt, buf[0:8])
	}
	if got := binary.LittleEndian.Uint32(buf[44:]); got != crc32.Checksum(buf[:44], castagnoli) {
		return 0, fmt.Errorf("%w: map header checksum", errCorrupt)
	}
	if v := binary.LittleEndian.Uint32(buf[8:]); v != formatV1 {
		return 0, fmt.Errorf("map format version %d: unsupported", v)
	}
	if s := binary.LittleEndian.Uint32(buf[12:]); s != want.blockShift {
		return 0, fmt.Errorf("map block size %d: the overlay is opened with %d", uint64(1)<<min(s, 63), 1<<want.blockShift)
	}
	if s := int64(binary.LittleEndian.Uint64(buf[16:])); s != want.size {
		return 0, fmt.Errorf("map is for a %d-byte base: this base has %d bytes", s, want.size)
	}
	payload := binary.LittleEndian.Uint64(buf[32:])
	if payload != uint64(len(m.words))*4 || uint64(len(buf)-mapHdrLen) != payload {
		return 0, fmt.Errorf("%w: map payload %d bytes, file holds %d, want %d", errCorrupt, payload, len(buf)-mapHdrLen, len(m.words)*4)
	}
	if got := binary.LittleEndian.Uint32(buf[40:]); got != crc32.Checksum(buf[mapHdrLen:], castagnoli) {
		return 0, fmt.Errorf("%w: map payload checksum", errCorrupt)
	}
	for i := range m.words {
		w := binary.LittleEndian.Uint32(buf[mapHdrLen+4*i:])
		// A 2-bit value of 3 is no state.
		if w&(w>>1)&0x55555555 != 0 {
			return 0, fmt.Errorf("%w: map word %d holds an invalid state", errCorrupt, i)
		}
		if last := int64(i+1) * blocksPerWord; last > m.blocks {
			// Blocks past the end must be Base.
			if w>>(2*uint(m.blocks%blocksPerWord)) != 0 {
				return 0, fmt.Errorf("%w: map word %d has states past the end", errCorrupt, i)
			}
		}
		m.words[i].Store(w)
	}
	return binary.LittleEndian.Uint64(buf[24:]), nil
}

// journal header (little-endian):
//
//	0  [8]byte magic "NBDCOWJL"
//	8  u32     format version (1)
//	12 u32     log2 of the block size
//	16 u64     generation: the map's generation this journal applies to
//	24 u32     zero
//	28 u32     CRC-32C of bytes 0..27
//
// followed by 24-byte records, each one state change of a run of blocks:
//
//	0  u64 first block
//	8  u64 block count
//	16 u32 new state (1 Data, 2 Zero)
//	20 u32 CRC-32C of the generation (u64 LE) then bytes 0..19
func encodeJournalHeader(blockShift uint32, gen uint64) []byte {
	buf := make([]byte, jHdrLen)
	copy(buf[0:8], journalMagic)
	binary.LittleEndian.PutUint32(buf[8:], formatV1)
	binary.LittleEndian.PutUint32(buf[12:], blockShift)
	binary.LittleEndian.PutUint64(buf[16:], gen)
	binary.LittleEndian.PutUint32(buf[28:], crc32.Checksum(buf[:28], castagnoli))
	return buf
}

// record is one journalled state change.
type record struct {
	start, count int64
	state        State
}

func appendRecord(buf []byte, gen uint64, r record) []byte {
	var rec [recLen]byte
	binary.LittleEndian.PutUint64(rec[0:], uint64(r.start))
	binary.LittleEndian.PutUint64(rec[8:], uint64(r.count))
	binary.LittleEndian.PutUint32(rec[16:], uint32(r.state))
	binary.LittleEndian.PutUint32(rec[20:], recordCRC(gen, rec[:20]))
	return append(buf, rec[:]...)
}

func recordCRC(gen uint64, rec []byte) uint32 {
	var g [8]byte
	binary.LittleEndian.PutUint64(g[:], gen)
	return crc32.Update(crc32.Checksum(g[:], castagnoli), castagnoli, rec)
}

// replayJournal applies the journal's records to m when the journal
// belongs to generation gen. It stops at the first short or bad record:
// that is a torn append whose Sync never returned. It reports how many
// records it applied and whether the journal was skipped as stale.
func replayJournal(buf []byte, blockShift uint32, gen uint64, m *stateMap) (applied int, stale bool, err error) {
	if len(buf) < jHdrLen {
		// A journal torn while being created: it has no records.
		return 0, true, nil
	}
	if string(buf[0:8]) != journalMagic {
		return 0, false, fmt.Errorf("%w: journal magic %q", errCorrupt, buf[0:8])
	}
	if binary.LittleEndian.Uint32(buf[28:]) != crc32.Checksum(buf[:28], castagnoli) {
		return 0, false, fmt.Errorf("%w: journal header checksum", errCorrupt)
	}
	if v := binary.LittleEndian.Uint32(buf[8:]); v != formatV1 {
		return 0, false, fmt.Errorf("journal format version %d: unsupported", v)
	}
	if s := binary.LittleEndian.Uint32(buf[12:]); s != blockShift {
		return 0, false, fmt.Errorf("%w: journal block shift %d, map %d", errCorrupt, s, blockShift)
	}
	if g := binary.LittleEndian.Uint64(buf[16:]); g != gen {
		// Left over from before the map was last rewritten: the map
		// already holds everything it recorded.
		return 0, true, nil
	}
	for off := jHdrLen; off+recLen <= len(buf); off += recLen {
		rec := buf[off : off+recLen]
		if binary.LittleEndian.Uint32(rec[20:]) != recordCRC(gen, rec[:20]) {
			break
		}
		start := binary.LittleEndian.Uint64(rec[0:])
		count := binary.LittleEndian.Uint64(rec[8:])
		st := binary.LittleEndian.Uint32(rec[16:])
		if st != uint32(StateData) && st != uint32(StateZero) || count == 0 ||
			start >= uint64(m.blocks) || count > uint64(m.blocks)-start {
			return applied, false, fmt.Errorf("%w: journal record %d: blocks %d+%d state %d (overlay has %d blocks)",
				errCorrupt, applied, start, count, st, m.blocks)
		}
		m.setRun(int64(start), int64(count), State(st))
		applied++
	}
	return applied, false, nil
}

// writeFileAtomic replaces dir/name with data: it writes name.tmp, syncs
// it, renames it over name and syncs the directory. A crash at any point
// leaves either the old or the new file under name. beforeRename, when
// set, runs between the write and the rename (tests inject crashes there).
func writeFileAtomic(fs disk.FS, dir, name string, data []byte, beforeRename func(name string) error) error {
	tmp := filepath.Join(dir, name+tmpSuffix)
	f, err := fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if beforeRename != nil {
		if err := beforeRename(name); err != nil {
			return err
		}
	}
	if err := fs.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return fs.SyncDir(dir)
}

// blockShiftOf returns log2(bs) for a power of two in [512, 1 MiB].
func blockShiftOf(bs int) (uint32, error) {
	if bs < 512 || bs > 1<<20 || bs&(bs-1) != 0 {
		return 0, fmt.Errorf("block size %d: want a power of two from 512 to 1048576", bs)
	}
	return uint32(bits.TrailingZeros(uint(bs))), nil
}
