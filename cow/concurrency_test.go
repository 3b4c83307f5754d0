package cow

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestConcurrentDisjoint runs goroutines on disjoint regions, each
// checking its own region after every request, while another goroutine
// keeps syncing (with compaction) and asking for extents.
func TestConcurrentDisjoint(t *testing.T) {
	const workers, region = 8, 5 * bs4k // regions straddle block words
	size := int64(workers*region + 100)
	base := newTestBase(t, size, byteRange{bs4k, 3 * bs4k})
	ov := openT(t, t.TempDir(), base.be, Options{})
	defer ov.Close()
	ov.compactAt = 0
	done := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := ov.Sync(); err != nil {
				t.Error(err)
				return
			}
			if _, err := ov.Extents(0, size, 100); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			lo := int64(g * region)
			model := append([]byte(nil), base.content[lo:lo+region]...)
			got := make([]byte, region)
			for i := range 150 {
				off := r.Int64N(region)
				n := r.Int64N(region-off) + 1
				var err error
				switch r.IntN(4) {
				case 0:
					err = ov.Zero(lo+off, n, false, false)
					clear(model[off : off+n])
				case 1:
					// Trim only whole blocks of the region, so the
					// model knows what reads as zeroes.
					fb, le := (lo+off+bs4k-1)/bs4k, (lo+off+n)/bs4k
					err = ov.Trim(lo+off, n)
					for b := fb; b < le; b++ {
						clear(model[b*bs4k-lo : (b+1)*bs4k-lo])
					}
				default:
					buf := bytes.Repeat([]byte{byte(g*16 + i%16 + 1)}, int(n))
					_, err = ov.WriteAt(buf, lo+off)
					copy(model[off:], buf)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := ov.ReadAt(got, lo); err != nil {
					t.Error(err)
					return
				}
				if d := firstDiff(got, model); d != "" {
					t.Errorf("worker %d request %d: %s", g, i, d)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	bg.Wait()
}

// TestConcurrentReadModifyWrite has many goroutines write disjoint
// pieces of the same Base (and Zero) blocks at once: read-modify-write
// must not lose any of them.
func TestConcurrentReadModifyWrite(t *testing.T) {
	const pieces, piece = 16, bs4k / 16
	base := newTestBase(t, 16*bs4k)
	ov := openT(t, t.TempDir(), base.be, Options{})
	defer ov.Close()
	if err := ov.Trim(8*bs4k, 8*bs4k); err != nil { // blocks 8..15: Zero
		t.Fatal(err)
	}
	for _, b := range []int64{0, 3, 9, 14} {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for p := range pieces {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				buf := bytes.Repeat([]byte{byte(p + 1)}, piece)
				if _, err := ov.WriteAt(buf, b*bs4k+int64(p*piece)); err != nil {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		got := make([]byte, bs4k)
		if _, err := ov.ReadAt(got, b*bs4k); err != nil {
			t.Fatal(err)
		}
		for p := range pieces {
			if want := bytes.Repeat([]byte{byte(p + 1)}, piece); !bytes.Equal(got[p*piece:(p+1)*piece], want) {
				t.Fatalf("block %d: piece %d lost: %s", b, p, firstDiff(got[p*piece:(p+1)*piece], want))
			}
		}
	}
	if got := ov.Allocated(); got != 4*bs4k {
		t.Fatalf("allocated %d, want %d", got, 4*bs4k)
	}
}

// TestConcurrentOverlapping races writers of whole two-block spans with
// readers: every block read must be one writer's (or the base's) whole,
// never a mixture.
func TestConcurrentOverlapping(t *testing.T) {
	const blocks = 8
	base := newTestBase(t, blocks*bs4k)
	ov := openT(t, t.TempDir(), base.be, Options{})
	defer ov.Close()
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 3))
			buf := make([]byte, 2*bs4k)
			for i := range 100 {
				if g%2 == 0 {
					b := r.Int64N(blocks - 1)
					fill := byte(g*100 + i%100 + 1)
					for j := range buf {
						buf[j] = fill
					}
					if _, err := ov.WriteAt(buf, b*bs4k); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				b := r.Int64N(blocks)
				blk := buf[:bs4k]
				if _, err := ov.ReadAt(blk, b*bs4k); err != nil {
					t.Error(err)
					return
				}
				if err := wholeVersion(blk, blockOf(base.content, b)); err != nil {
					t.Errorf("block %d: %v", b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func wholeVersion(blk, base []byte) error {
	if bytes.Equal(blk, base) {
		return nil
	}
	for i := range blk {
		if blk[i] != blk[0] {
			return fmt.Errorf("mixed: byte 0 is %#x, byte %d is %#x", blk[0], i, blk[i])
		}
	}
	return nil
}

// TestTwoConnections has two goroutines share one overlay, as two
// connections of one client do: each sees the other's writes at once,
// and a Sync by one makes the writes of both durable.
func TestTwoConnections(t *testing.T) {
	base := newTestBase(t, testSize, testHoles...)
	dir := t.TempDir()
	ov := openT(t, dir, base.be, Options{})
	toB, toA := make(chan int64), make(chan int64)
	const rounds = 30
	var wg sync.WaitGroup
	wg.Add(2)
	check := func(who string, off int64, want byte) bool {
		got := make([]byte, 10)
		if _, err := ov.ReadAt(got, off); err != nil {
			t.Error(err)
			return false
		}
		if !bytes.Equal(got, bytes.Repeat([]byte{want}, 10)) {
			t.Errorf("%s at %d: read %x, want %#x", who, off, got, want)
			return false
		}
		return true
	}
	go func() { // connection A: writes, then checks B's reply
		defer wg.Done()
		defer close(toB)
		for i := range int64(rounds) {
			off := i * 2000
			if _, err := ov.WriteAt(bytes.Repeat([]byte{0xa0}, 10), off); err != nil {
				t.Error(err)
				return
			}
			toB <- off
			if !check("A", <-toA, 0xb0) {
				return
			}
		}
	}()
	go func() { // connection B: checks A's write, writes next to it
		defer wg.Done()
		defer close(toA)
		for off := range toB {
			if !check("B", off, 0xa0) {
				return
			}
			if _, err := ov.WriteAt(bytes.Repeat([]byte{0xb0}, 10), off+10); err != nil {
				t.Error(err)
				return
			}
			toA <- off + 10
		}
		// B flushes: A's writes are covered too.
		if err := ov.Sync(); err != nil {
			t.Error(err)
		}
	}()
	wg.Wait()
	crash(ov)
	ov = openT(t, dir, base.be, Options{})
	defer ov.Close()
	for i := range int64(rounds) {
		check("after crash", i*2000, 0xa0)
		check("after crash", i*2000+10, 0xb0)
	}
}

// TestConcurrentFirstWrites races first writes of two-block spans into
// Base blocks (across a word and a chunk boundary) with readers of the
// same spans, which read Base blocks without locks: a reader sees both
// blocks from the base or both from one write, never one of each.
func TestConcurrentFirstWrites(t *testing.T) {
	const bs = 512
	blocks := int64(chunkBlocks + 64)
	content := make([]byte, blocks*bs)
	for i := range content {
		content[i] = byte(i/bs%200 + 1) // bytes 1-200 by block; writes fill 201-255
	}
	// Disjoint spans: in a word, across words, across chunks.
	spans := []int64{0, 15, 40, chunkBlocks - 17, chunkBlocks - 1, chunkBlocks + 31}
	for trial := range 20 {
		ov, err := Open(t.TempDir(), sparseBase{bytes.NewReader(content), false}, Options{BlockSize: bs})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(trial), uint64(g)))
				buf := make([]byte, 2*bs)
				for i := range 200 {
					b := spans[r.IntN(len(spans))]
					if g < 2 {
						fill := byte(201 + (g*200+i)%55)
						for j := range buf {
							buf[j] = fill
						}
						if _, err := ov.WriteAt(buf, b*bs); err != nil {
							t.Error(err)
						}
						continue
					}
					var err error
					if g == 2 {
						_, err = ov.ReadAt(buf, b*bs)
					} else if _, err = ov.ReadAtNoWait(buf, b*bs); errors.Is(err, ErrWouldBlock) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					if !bytes.Equal(buf, content[b*bs:(b+2)*bs]) && !bytes.Equal(buf, bytes.Repeat(buf[:1], 2*bs)) {
						t.Errorf("trial %d: blocks %d-%d read neither the base nor one write: bytes %#x, %#x", trial, b, b+1, buf[0], buf[2*bs-1])
						return
					}
				}
			}()
		}
		wg.Wait()
		ov.Close()
		if t.Failed() {
			return
		}
	}
}
