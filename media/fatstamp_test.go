package media

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// floppyBoot is the BIOS parameter block of a 1.44 MB FAT12 floppy as
// mkfs.fat writes it, in a 512-byte boot sector.
func floppyBoot() []byte {
	b := make([]byte, 512)
	copy(b[0:], []byte{0xeb, 0x3c, 0x90})       // jump
	copy(b[3:], "mkfs.fat")                     // OEM name
	binary.LittleEndian.PutUint16(b[11:], 512)  // bytes per sector
	b[13] = 1                                   // sectors per cluster
	binary.LittleEndian.PutUint16(b[14:], 1)    // reserved sectors
	b[16] = 2                                   // FATs
	binary.LittleEndian.PutUint16(b[17:], 224)  // root entries
	binary.LittleEndian.PutUint16(b[19:], 2880) // total sectors
	b[21] = 0xf0                                // media descriptor
	binary.LittleEndian.PutUint16(b[22:], 9)    // sectors per FAT
	b[510], b[511] = 0x55, 0xaa                 // signature
	return b
}

func TestRootDir(t *testing.T) {
	off, size, err := rootDir(floppyBoot())
	// (1 reserved + 2 FATs × 9 sectors) × 512 bytes; 224 entries × 32 bytes.
	if err != nil || off != 19*512 || size != 224*32 {
		t.Errorf("rootDir(floppy) = %d, %d, %v; want %d, %d", off, size, err, 19*512, 224*32)
	}
	tests := []struct {
		name string
		edit func(b []byte)
		want string
	}{
		{"no signature", func(b []byte) { b[511] = 0 }, "signature"},
		{"FAT32", func(b []byte) { binary.LittleEndian.PutUint16(b[17:], 0); binary.LittleEndian.PutUint16(b[22:], 0) }, "not FAT12/16"},
		{"odd sector size", func(b []byte) { binary.LittleEndian.PutUint16(b[11:], 600) }, "bytes per sector"},
		{"huge root", func(b []byte) { binary.LittleEndian.PutUint16(b[17:], 65535) }, "root directory of 65535"},
		{"no FATs", func(b []byte) { b[16] = 0 }, "FAT count"},
	}
	for _, tt := range tests {
		b := floppyBoot()
		tt.edit(b)
		if _, _, err := rootDir(b); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: rootDir = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	if _, _, err := rootDir(make([]byte, 100)); err == nil {
		t.Error("rootDir accepted a short sector")
	}
}

func TestDOSDateTime(t *testing.T) {
	d, tm := dosDateTime(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	if d != 40<<9|1<<5|1 || tm != 0 {
		t.Errorf("2020-01-01 00:00:00 = %#04x %#04x", d, tm)
	}
	d, tm = dosDateTime(time.Date(2023, 11, 14, 22, 13, 21, 0, time.UTC))
	if d != 43<<9|11<<5|14 || tm != 22<<11|13<<5|10 { // seconds in 2 s steps
		t.Errorf("2023-11-14 22:13:21 = %#04x %#04x", d, tm)
	}
}

func TestStampEntries(t *testing.T) {
	entry := func(name string, attr byte) []byte {
		e := bytes.Repeat([]byte{0x77}, 32) // times and the rest: 0x77
		copy(e, name)
		e[11] = attr
		return e
	}
	dir := bytes.Join([][]byte{
		entry("LDLINUX SYS", 0x27),                // file: stamped
		entry("A\x00B\x00C\x00D\x00E\x00F", 0x0f), // long name part: untouched
		entry("\xe5ELETED TXT", 0x20),             // deleted: untouched
		entry("NBDBOOT    ", 0x08),                // volume label: stamped
		make([]byte, 32),                          // end of directory
		entry("AFTEREND   ", 0x20),                // after the end: untouched
	}, nil)
	orig := bytes.Clone(dir)
	epoch := time.Date(2020, 1, 1, 0, 0, 2, 0, time.UTC)
	stampEntries(dir, epoch)
	stamped := func(e []byte) bool {
		return e[13] == 0 && binary.LittleEndian.Uint16(e[14:]) == 1 && binary.LittleEndian.Uint16(e[16:]) == 0x5021 &&
			binary.LittleEndian.Uint16(e[18:]) == 0x5021 && binary.LittleEndian.Uint16(e[22:]) == 1 &&
			binary.LittleEndian.Uint16(e[24:]) == 0x5021
	}
	for i, want := range []bool{true, false, false, true, false, false} {
		e := dir[i*32 : i*32+32]
		if want && !stamped(e) {
			t.Errorf("entry %d not stamped: % x", i, e)
		}
		if !want && !bytes.Equal(e, orig[i*32:i*32+32]) {
			t.Errorf("entry %d changed: % x", i, e)
		}
		// Names, attributes, clusters and sizes never change.
		for _, r := range [][2]int{{0, 13}, {20, 22}, {26, 32}} {
			if !bytes.Equal(e[r[0]:r[1]], orig[i*32+r[0]:i*32+r[1]]) {
				t.Errorf("entry %d bytes %d-%d changed", i, r[0], r[1])
			}
		}
	}
}

// FuzzStampEntries: stamping never panics, changes only the time fields
// and is idempotent.
func FuzzStampEntries(f *testing.F) {
	f.Add(floppyBoot()[:64])
	f.Add(bytes.Repeat([]byte{0x41}, 96))
	f.Fuzz(func(t *testing.T, dir []byte) {
		epoch := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
		once := bytes.Clone(dir)
		stampEntries(once, epoch)
		twice := bytes.Clone(once)
		stampEntries(twice, epoch)
		if !bytes.Equal(once, twice) {
			t.Fatal("stamping twice differs from once")
		}
		for i := range dir {
			switch i % 32 {
			case 13, 14, 15, 16, 17, 18, 19, 22, 23, 24, 25:
			default:
				if once[i] != dir[i] {
					t.Fatalf("byte %d (not a time field) changed", i)
				}
			}
		}
	})
}

// FuzzRootDir: any boot sector either is refused or places a root
// directory of at most maxRootEntries entries.
func FuzzRootDir(f *testing.F) {
	f.Add(floppyBoot())
	f.Fuzz(func(t *testing.T, b []byte) {
		off, size, err := rootDir(b)
		if err == nil && (off < 0 || size <= 0 || size > maxRootEntries*dirEntrySize) {
			t.Fatalf("rootDir = %d, %d", off, size)
		}
	})
}
