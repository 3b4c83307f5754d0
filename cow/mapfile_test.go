package cow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// testGeometry is the map geometry of the fuzz targets: 17 blocks of
// 4 KiB, the last one short (two state words).
var testGeometry = mapHeader{blockShift: 12, size: testSize}

func sampleMap() *stateMap {
	m := newStateMap(17)
	m.setRun(0, 3, StateData)
	m.setRun(5, 1, StateZero)
	m.setRun(16, 1, StateData)
	return m
}

func TestMapFileBytes(t *testing.T) {
	h := testGeometry
	h.gen = 7
	got := encodeMap(h, sampleMap())
	want := []byte{
		'N', 'B', 'D', 'C', 'O', 'W', 'M', 'P', // magic
		2, 0, 0, 0, // version 2
		12, 0, 0, 0, // log2 block size
		0xe8, 0x03, 0x01, 0, 0, 0, 0, 0, // size 66536
		7, 0, 0, 0, 0, 0, 0, 0, // generation 7
		0x08, 0x10, 0, 0, 0, 0, 0, 0, // payload: one entry, 8+4096 bytes
	}
	if !bytes.Equal(got[:40], want) {
		t.Fatalf("header\n got %x\nwant %x", got[:40], want)
	}
	// Entry: chunk 0, its words follow. Word 0: blocks 0-2 Data (01),
	// block 5 Zero (10): 0b10_00_00_01_01_01. Word 1: block 16 Data.
	// Words 2-1023: past the end, Base.
	entry := []byte{
		0, 0, 0, 0, // chunk 0
		0, 0, 0, 0, // fill 0: words follow
		0x15, 0x08, 0, 0, // word 0
		0x01, 0, 0, 0, // word 1
	}
	if p := got[48:]; !bytes.Equal(p[:len(entry)], entry) || len(p) != 8+4096 || !allZero(p[len(entry):]) {
		t.Fatalf("payload %x...", p[:min(len(p), 32)])
	}
	m := newStateMap(17)
	gen, err := decodeMap(got, testGeometry, m)
	if err != nil || gen != 7 {
		t.Fatalf("decode: gen %d, %v", gen, err)
	}
	sameStates(t, m, sampleMap())
}

func allZero(p []byte) bool { return bytes.Count(p, []byte{0}) == len(p) }

func sameStates(t *testing.T, got, want *stateMap) {
	t.Helper()
	for b := range want.blocks {
		if got.get(b) != want.get(b) {
			t.Fatalf("block %d: %v, want %v", b, got.get(b), want.get(b))
		}
	}
}

// v1Map is a version 1 map as overlays wrote it before version 2: 9
// blocks of 512 bytes (the file in testdata/v1overlay).
var v1Map = []byte{
	'N', 'B', 'D', 'C', 'O', 'W', 'M', 'P', // magic
	1, 0, 0, 0, // version 1
	9, 0, 0, 0, // log2 block size: 512
	0x94, 0x11, 0, 0, 0, 0, 0, 0, // size 4500: 9 blocks, the last short
	1, 0, 0, 0, 0, 0, 0, 0, // generation 1
	4, 0, 0, 0, 0, 0, 0, 0, // payload: one word
	0xc1, 0xa7, 0x1f, 0xad, // CRC-32C of the payload
	0xab, 0x8b, 0xaa, 0xdb, // CRC-32C of the header
	// Word 0: blocks 1, 2 Data (01), blocks 4, 5 Zero (10).
	0x14, 0x0a, 0, 0,
}

func TestMapFileV1(t *testing.T) {
	geo := mapHeader{blockShift: 9, size: 4500}
	m := newStateMap(9)
	gen, err := decodeMap(v1Map, geo, m)
	if err != nil || gen != 1 {
		t.Fatalf("decode: gen %d, %v", gen, err)
	}
	want := []State{StateBase, StateData, StateData, StateBase, StateZero, StateZero, StateBase, StateBase, StateBase}
	for b, s := range want {
		if m.get(int64(b)) != s {
			t.Errorf("block %d: %v, want %v", b, m.get(int64(b)), s)
		}
	}
	if m.private.Load() != 1 {
		t.Errorf("%d chunks allocated, want 1", m.private.Load())
	}
	// Re-encoded as version 2, it decodes to the same states.
	geo.gen = gen
	v2 := encodeMap(geo, m)
	if v := v2[8]; v != 2 {
		t.Fatalf("re-encoded as version %d", v)
	}
	m2 := newStateMap(9)
	if _, err := decodeMap(v2, geo, m2); err != nil {
		t.Fatal(err)
	}
	sameStates(t, m2, m)
}

// bigGeometry has two whole chunks and a partial third (17 blocks), at
// 512-byte blocks.
var bigGeometry = mapHeader{blockShift: 9, size: (2*chunkBlocks + 17) << 9}

const bigBlocks = 2*chunkBlocks + 17

// bigMap: chunk 0 all Zero (filled), chunk 1 all Base, chunk 2 block
// 2*chunkBlocks+16 Data.
func bigMap() *stateMap {
	m := newStateMap(bigBlocks)
	m.setRun(0, chunkBlocks, StateZero)
	m.setRun(2*chunkBlocks+16, 1, StateData)
	return m
}

func TestMapFileChunks(t *testing.T) {
	m := bigMap()
	if m.private.Load() != 1 || m.shared.Load() != 1 {
		t.Fatalf("%d private chunks, %d shared, want 1 and 1", m.private.Load(), m.shared.Load())
	}
	h := bigGeometry
	buf := encodeMap(h, m)
	payload := []byte{
		0, 0, 0, 0, // chunk 0
		2, 0, 0, 0, // fill 2: all Zero
		2, 0, 0, 0, // chunk 2 (chunk 1 is all Base: not listed)
		0, 0, 0, 0, // fill 0: words follow
	}
	p := buf[mapHdrLen:]
	if len(p) != 16+chunkBytes || !bytes.Equal(p[:16], payload) {
		t.Fatalf("payload %d bytes, starting %x", len(p), p[:min(len(p), 16)])
	}
	// Word 1 of chunk 2: its block 16 (bit 0) Data.
	if w := p[16+4 : 16+8]; !bytes.Equal(w, []byte{1, 0, 0, 0}) || !allZero(p[16:20]) || !allZero(p[24:]) {
		t.Fatalf("chunk 2 words %x", p[16:32])
	}
	m2 := newStateMap(bigBlocks)
	if _, err := decodeMap(buf, h, m2); err != nil {
		t.Fatal(err)
	}
	sameStates(t, m2, m)
	if m2.countData() != 1 || !m2.hasZero() {
		t.Errorf("decoded: %d Data blocks, hasZero %v", m2.countData(), m2.hasZero())
	}
}

// withPayload returns a version 2 map of bigGeometry with payload p and
// valid checksums.
func withPayload(p []byte) []byte {
	buf := encodeMap(bigGeometry, newStateMap(bigBlocks))
	buf = append(buf, p...)
	binary.LittleEndian.PutUint64(buf[32:], uint64(len(p)))
	binary.LittleEndian.PutUint32(buf[40:], crc32.Checksum(p, castagnoli))
	binary.LittleEndian.PutUint32(buf[44:], crc32.Checksum(buf[:44], castagnoli))
	return buf
}

func mapEntry(ci, fill uint32, words ...uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, ci)
	b = binary.LittleEndian.AppendUint32(b, fill)
	if fill == fillWords {
		w := make([]uint32, chunkWords)
		copy(w, words)
		for _, x := range w {
			b = binary.LittleEndian.AppendUint32(b, x)
		}
	}
	return b
}

func TestMapFileV2Corrupt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"short entry", mapEntry(0, 2)[:5]},
		{"words cut short", mapEntry(2, fillWords, 1)[:100]},
		{"chunk past the end", mapEntry(3, 1)},
		{"chunk index huge", mapEntry(0xffffffff, 1)},
		{"chunks out of order", append(mapEntry(1, 1), mapEntry(0, 2)...)},
		{"chunk twice", append(mapEntry(1, 1), mapEntry(1, 2)...)},
		{"fill 3", mapEntry(0, 3)},
		{"fill of the partial last chunk", mapEntry(2, 1)},
		{"words all Base", mapEntry(1, fillWords)},
		{"words all Data in a whole chunk", mapEntry(1, fillWords, slices.Repeat([]uint32{uniform[StateData]}, chunkWords)...)},
		{"invalid state 3", mapEntry(1, fillWords, 3)},
		{"state past the end", mapEntry(2, fillWords, 0, 0, 1)},
		{"state past the end in the last word", mapEntry(2, fillWords, 0, 1<<2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newStateMap(bigBlocks)
			if _, err := decodeMap(withPayload(tc.payload), bigGeometry, m); !errors.Is(err, errCorrupt) {
				t.Fatalf("decode: %v, want a corrupt map", err)
			}
		})
	}
	// The valid neighbours of those decode.
	for _, p := range [][]byte{mapEntry(2, fillWords, 0, 1), append(mapEntry(0, 1), mapEntry(1, 2)...), nil} {
		if _, err := decodeMap(withPayload(p), bigGeometry, newStateMap(bigBlocks)); err != nil {
			t.Errorf("payload %x...: %v", p[:min(len(p), 16)], err)
		}
	}
}

// TestReadMapFileCap: a map file longer than the overlay's largest is
// refused before it is read.
func TestReadMapFileCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readMapFile(path, maxMapLen(17)); !errors.Is(err, errCorrupt) {
		t.Fatalf("1 MiB map for 17 blocks: %v", err)
	}
	if b, err := readMapFile(path, 1<<20); err != nil || len(b) != 1<<20 {
		t.Fatalf("at the cap: %d bytes, %v", len(b), err)
	}
	if got, want := maxMapLen(17), int64(mapHdrLen+entryLen+chunkBytes); got != want {
		t.Errorf("maxMapLen(17) = %d, want %d", got, want)
	}
}

func TestJournalRecordBytes(t *testing.T) {
	got := appendRecord(nil, 7, record{start: 0x0102, count: 3, state: StateZero})
	want := []byte{
		0x02, 0x01, 0, 0, 0, 0, 0, 0, // first block 0x102
		3, 0, 0, 0, 0, 0, 0, 0, // count 3
		2, 0, 0, 0, // state Zero
	}
	if !bytes.Equal(got[:20], want) || len(got) != recLen {
		t.Fatalf("record %x, want %x and a checksum", got, want)
	}
}

// FuzzMapFile: decoding never panics; what decodes as version 2
// re-encodes to the same bytes, and a version 1 map re-encodes (as
// version 2) to a map that decodes to the same states.
func FuzzMapFile(f *testing.F) {
	h := bigGeometry
	h.gen = 3
	f.Add(encodeMap(h, bigMap()))
	f.Add(encodeMap(h, newStateMap(bigBlocks)))
	f.Add(withPayload(append(mapEntry(0, 1), mapEntry(2, fillWords, 0x15, 1)...)))
	f.Add(v1Map)
	v1 := make([]byte, mapHdrLen+(bigBlocks+15)/16*4)
	copy(v1, v1Map[:mapHdrLen])
	v1[12] = 9
	binary.LittleEndian.PutUint64(v1[16:], uint64(bigGeometry.size))
	binary.LittleEndian.PutUint64(v1[32:], uint64(len(v1)-mapHdrLen))
	v1[mapHdrLen+5] = 0x80 // block 23 Zero
	binary.LittleEndian.PutUint32(v1[40:], crc32.Checksum(v1[mapHdrLen:], castagnoli))
	binary.LittleEndian.PutUint32(v1[44:], crc32.Checksum(v1[:44], castagnoli))
	f.Add(v1)
	f.Add([]byte("NBDCOWMP"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := newStateMap(bigBlocks)
		gen, err := decodeMap(data, bigGeometry, m)
		if err != nil {
			return
		}
		h := bigGeometry
		h.gen = gen
		again := encodeMap(h, m)
		if data[8] == mapFormatV2 && !bytes.Equal(again, data) {
			t.Fatalf("round trip\n got %x\nwant %x", again, data)
		}
		m2 := newStateMap(bigBlocks)
		if _, err := decodeMap(again, bigGeometry, m2); err != nil {
			t.Fatalf("re-encoded map does not decode: %v", err)
		}
		if third := encodeMap(h, m2); !bytes.Equal(third, again) {
			t.Fatal("re-encoded map decodes to other states")
		}
		if m.memBytes() > int64(len(data))+int64(len(m.chunks))*8+chunkBytes {
			t.Fatalf("%d bytes of map from a %d-byte file", m.memBytes(), len(data))
		}
	})
}

// FuzzJournal: replaying never panics and leaves only valid states.
func FuzzJournal(f *testing.F) {
	j := encodeJournalHeader(12, 5)
	j = appendRecord(j, 5, record{start: 1, count: 2, state: StateData})
	j = appendRecord(j, 5, record{start: 2, count: 15, state: StateZero})
	f.Add(j)
	f.Add(j[:len(j)-3])
	f.Add(encodeJournalHeader(12, 4))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := newStateMap(17)
		if _, _, err := replayJournal(data, 12, 5, m); err != nil {
			return
		}
		h := testGeometry
		if _, err := decodeMap(encodeMap(h, m), h, newStateMap(17)); err != nil {
			t.Fatalf("replay left an invalid map: %v", err)
		}
	})
}
