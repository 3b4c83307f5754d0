package cow

import (
	"bytes"
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
		1, 0, 0, 0, // version 1
		12, 0, 0, 0, // log2 block size
		0xe8, 0x03, 0x01, 0, 0, 0, 0, 0, // size 66536
		7, 0, 0, 0, 0, 0, 0, 0, // generation 7
		8, 0, 0, 0, 0, 0, 0, 0, // payload: 2 words
	}
	if !bytes.Equal(got[:40], want) {
		t.Fatalf("header\n got %x\nwant %x", got[:40], want)
	}
	// Word 0: blocks 0-2 Data (01), block 5 Zero (10): 0b10_00_00_01_01_01.
	// Word 1: block 16 Data.
	if p := got[48:]; !bytes.Equal(p, []byte{0x15, 0x08, 0, 0, 0x01, 0, 0, 0}) {
		t.Fatalf("payload %x", p)
	}
	m := newStateMap(17)
	gen, err := decodeMap(got, testGeometry, m)
	if err != nil || gen != 7 {
		t.Fatalf("decode: gen %d, %v", gen, err)
	}
	for b := range int64(17) {
		if m.get(b) != sampleMap().get(b) {
			t.Fatalf("block %d: %v", b, m.get(b))
		}
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

// FuzzMapFile: decoding never panics, and what decodes re-encodes to the
// same bytes.
func FuzzMapFile(f *testing.F) {
	h := testGeometry
	h.gen = 3
	f.Add(encodeMap(h, sampleMap()))
	f.Add(encodeMap(h, newStateMap(17)))
	f.Add([]byte("NBDCOWMP"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := newStateMap(17)
		gen, err := decodeMap(data, testGeometry, m)
		if err != nil {
			return
		}
		h := testGeometry
		h.gen = gen
		if again := encodeMap(h, m); !bytes.Equal(again, data) {
			t.Fatalf("round trip\n got %x\nwant %x", again, data)
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
