package cow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
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
	mapFormatV2  = 2
	mapHdrLen    = 48
	jHdrLen      = 32
	recLen       = 24
	// entryLen is the fixed part of a version 2 map entry.
	entryLen = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a state file that fails its checks.
var errCorrupt = errors.New("corrupt overlay state")

// mapHeader is the fixed part of the map file (little-endian):
//
//	0  [8]byte magic "NBDCOWMP"
//	8  u32     format version (2; 1 is still read)
//	12 u32     log2 of the block size
//	16 u64     base (and export) size in bytes
//	24 u64     generation
//	32 u64     payload length in bytes
//	40 u32     CRC-32C of the payload
//	44 u32     CRC-32C of bytes 0..43
//
// Version 2's payload lists the chunks of 16384 blocks (chunkBlocks)
// that are not all Base, in ascending order, each as an entry:
//
//	0  u32     chunk index
//	4  u32     fill: 0 = 1024 state words follow (4096 bytes),
//	           1 = every block Data, 2 = every block Zero
//
// so a map costs in proportion to the chunks a client changed. A fill
// entry is only for a chunk wholly inside the export; a word entry holds
// blocks of more than one state. A state word is a little-endian u32,
// block i in bits 2*(i%16)..2*(i%16)+1 of word i/16 of the export
// (word i%1024 of chunk i/16384), 0 = Base, 1 = Data, 2 = Zero; blocks
// past the end are Base.
//
// Version 1's payload is every state word of the export (4 bytes per 16
// blocks, however few were changed); overlays written before version 2
// still open, and their next map is written as version 2.
type mapHeader struct {
	blockShift uint32
	size       int64
	gen        uint64
}

// Map entry fills other than a state of the whole chunk.
const fillWords = 0

// encodeMap returns the version 2 map file of m. The caller excludes
// writers (or m is not shared yet).
func encodeMap(h mapHeader, m *stateMap) []byte {
	buf := make([]byte, mapHdrLen, mapHdrLen+m.entryBytes())
	for ci := range m.chunks {
		c := m.chunks[ci].Load()
		if s, ok := filledState(c); ok {
			if s != StateBase {
				buf = binary.LittleEndian.AppendUint32(buf, uint32(ci))
				buf = binary.LittleEndian.AppendUint32(buf, uint32(s))
			}
			continue
		}
		if s, ok := uniformChunk(c); ok && (s == StateBase || m.whole(int64(ci))) {
			if s != StateBase { // a private chunk that became uniform
				buf = binary.LittleEndian.AppendUint32(buf, uint32(ci))
				buf = binary.LittleEndian.AppendUint32(buf, uint32(s))
			}
			continue
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(ci))
		buf = binary.LittleEndian.AppendUint32(buf, fillWords)
		for i := range c {
			buf = binary.LittleEndian.AppendUint32(buf, c[i].Load())
		}
	}
	copy(buf[0:8], mapMagic)
	binary.LittleEndian.PutUint32(buf[8:], mapFormatV2)
	binary.LittleEndian.PutUint32(buf[12:], h.blockShift)
	binary.LittleEndian.PutUint64(buf[16:], uint64(h.size))
	binary.LittleEndian.PutUint64(buf[24:], h.gen)
	binary.LittleEndian.PutUint64(buf[32:], uint64(len(buf)-mapHdrLen))
	binary.LittleEndian.PutUint32(buf[40:], crc32.Checksum(buf[mapHdrLen:], castagnoli))
	binary.LittleEndian.PutUint32(buf[44:], crc32.Checksum(buf[:44], castagnoli))
	return buf
}

// entryBytes is about the payload length of m's version 2 map.
func (m *stateMap) entryBytes() int64 {
	return m.private.Load()*(entryLen+chunkBytes) + m.shared.Load()*entryLen
}

// maxMapLen is the longest map file an overlay of blocks blocks can have
// (version 1 or 2): longer ones are refused before they are read whole.
func maxMapLen(blocks int64) int64 {
	words := (blocks + blocksPerWord - 1) / blocksPerWord
	chunks := (blocks + chunkBlocks - 1) / chunkBlocks
	return mapHdrLen + max(words*4, chunks*(entryLen+chunkBytes))
}

// uniformChunk reports whether every block of c is in one state, and which.
func uniformChunk(c *chunk) (State, bool) {
	w := c[0].Load()
	for i := range c {
		if c[i].Load() != w {
			return 0, false
		}
	}
	for s, u := range uniform {
		if w == u {
			return State(s), true
		}
	}
	return 0, false
}

// decodeMap checks buf against the expected geometry and fills m, which
// must be all Base. It allocates only for the chunks buf holds states of.
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
	v := binary.LittleEndian.Uint32(buf[8:])
	if v != formatV1 && v != mapFormatV2 {
		return 0, fmt.Errorf("map format version %d: unsupported", v)
	}
	if s := binary.LittleEndian.Uint32(buf[12:]); s != want.blockShift {
		return 0, fmt.Errorf("map block size %d: the overlay is opened with %d", uint64(1)<<min(s, 63), 1<<want.blockShift)
	}
	if s := int64(binary.LittleEndian.Uint64(buf[16:])); s != want.size {
		return 0, fmt.Errorf("map is for a %d-byte base: this base has %d bytes", s, want.size)
	}
	payload := binary.LittleEndian.Uint64(buf[32:])
	if uint64(len(buf)-mapHdrLen) != payload {
		return 0, fmt.Errorf("%w: map payload %d bytes, file holds %d", errCorrupt, payload, len(buf)-mapHdrLen)
	}
	if got := binary.LittleEndian.Uint32(buf[40:]); got != crc32.Checksum(buf[mapHdrLen:], castagnoli) {
		return 0, fmt.Errorf("%w: map payload checksum", errCorrupt)
	}
	gen = binary.LittleEndian.Uint64(buf[24:])
	if v == formatV1 {
		return gen, decodeV1(buf[mapHdrLen:], m)
	}
	return gen, decodeV2(buf[mapHdrLen:], m)
}

// decodeV1 fills m from a version 1 payload: every word of the export.
func decodeV1(p []byte, m *stateMap) error {
	if int64(len(p)) != m.words()*4 {
		return fmt.Errorf("%w: version 1 map payload %d bytes, want %d", errCorrupt, len(p), m.words()*4)
	}
	for i := range m.words() {
		w := binary.LittleEndian.Uint32(p[4*i:])
		if err := m.checkWord(i, w); err != nil {
			return err
		}
		if w != 0 {
			m.writable(i / chunkWords)[i%chunkWords].Store(w)
		}
	}
	return nil
}

// decodeV2 fills m from a version 2 payload: the entries of the chunks
// not all Base, in ascending order.
func decodeV2(p []byte, m *stateMap) error {
	next := int64(0) // lowest chunk index the next entry may have
	for off := 0; off < len(p); {
		if len(p)-off < entryLen {
			return fmt.Errorf("%w: map entry at payload offset %d: %d bytes left, want %d", errCorrupt, off, len(p)-off, entryLen)
		}
		ci := int64(binary.LittleEndian.Uint32(p[off:]))
		fill := binary.LittleEndian.Uint32(p[off+4:])
		off += entryLen
		if ci < next || ci >= int64(len(m.chunks)) {
			return fmt.Errorf("%w: map entry for chunk %d: want %d to %d", errCorrupt, ci, next, len(m.chunks)-1)
		}
		next = ci + 1
		switch fill {
		case uint32(StateData), uint32(StateZero):
			if !m.whole(ci) {
				return fmt.Errorf("%w: map fills chunk %d, which passes the end", errCorrupt, ci)
			}
			m.setChunk(ci, filled[fill])
			continue
		case fillWords:
		default:
			return fmt.Errorf("%w: map entry for chunk %d: fill %d", errCorrupt, ci, fill)
		}
		if len(p)-off < chunkBytes {
			return fmt.Errorf("%w: map entry for chunk %d: %d bytes left, want %d", errCorrupt, ci, len(p)-off, chunkBytes)
		}
		c := m.writable(ci)
		for i := range int64(chunkWords) {
			w := binary.LittleEndian.Uint32(p[off+4*int(i):])
			if err := m.checkWord(ci*chunkWords+i, w); err != nil {
				return err
			}
			c[i].Store(w)
		}
		off += chunkBytes
		if s, ok := uniformChunk(c); ok && (s == StateBase || m.whole(ci)) {
			return fmt.Errorf("%w: map entry for chunk %d lists words all %s", errCorrupt, ci, s)
		}
	}
	return nil
}

// checkWord checks state word i: no 2-bit value 3 (no state), and only
// Base past the last block.
func (m *stateMap) checkWord(i int64, w uint32) error {
	if w&(w>>1)&0x55555555 != 0 {
		return fmt.Errorf("%w: map word %d holds an invalid state", errCorrupt, i)
	}
	first := i * blocksPerWord
	switch {
	case first >= m.blocks:
		if w != 0 {
			return fmt.Errorf("%w: map word %d has states past the end", errCorrupt, i)
		}
	case first+blocksPerWord > m.blocks:
		if w>>(2*uint(m.blocks-first)) != 0 {
			return fmt.Errorf("%w: map word %d has states past the end", errCorrupt, i)
		}
	}
	return nil
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

// readMapFile reads the map file at path, refusing before reading it one
// longer than limit (maxMapLen): a damaged or hostile file must not make
// the overlay allocate per its size.
func readMapFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%w: map %s has %d bytes, more than the %d a map of this overlay can have", errCorrupt, path, st.Size(), limit)
	}
	buf := make([]byte, st.Size())
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("read map %s: %w", path, err)
	}
	return buf, nil
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
