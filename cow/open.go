package cow

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nbdboot/nbdboot/internal/disk"
	"golang.org/x/sys/unix"
)

// Open opens the overlay stored in dir over base, creating it if dir holds
// none. An existing overlay's state is recovered: its map, then the journal
// records that were completely written; everything since the last Sync
// that did not reach the journal reads as it did before.
func Open(dir string, base Base, opt Options) (*Overlay, error) {
	return open(dir, base, opt, nil, journalMin)
}

// open is Open with what tests change: hook runs before every rename of
// a state file, and compactAt is the journal size above which the map is
// rewritten (0: at every open and Sync).
func open(dir string, base Base, opt Options, hook func(string) error, compactAt int64) (*Overlay, error) {
	kept := opt.kept
	defer func() { kept.release() }() // nil once handed to load
	if opt.BlockSize == 0 {
		opt.BlockSize = DefaultBlockSize
	}
	shift, err := blockShiftOf(opt.BlockSize)
	if err != nil {
		return nil, fmt.Errorf("open overlay %s: %w", dir, err)
	}
	if opt.Quota < 0 {
		return nil, fmt.Errorf("open overlay %s: quota %d is negative", dir, opt.Quota)
	}
	size := base.Size()
	if size < 0 {
		return nil, fmt.Errorf("open overlay %s: base size %d is negative", dir, size)
	}
	bs := int64(1) << shift
	o := &Overlay{
		dir: dir, size: size, shift: shift, bs: bs,
		blocks: (size + bs - 1) >> shift, quotaBlocks: opt.Quota >> shift,
		zeroes: make([]byte, bs), testHook: hook, compactAt: compactAt, fs: opt.FS,
	}
	if o.fs == nil {
		o.fs = disk.OS{}
	}
	if opt.Quota > 0 && o.quotaBlocks == 0 {
		return nil, fmt.Errorf("open overlay %s: quota %d is smaller than one %d-byte block", dir, opt.Quota, bs)
	}
	o.setBase(base)
	o.bufs.New = func() any { b := make([]byte, bs); return &b }
	o.states = newStateMap(o.blocks)
	err = o.load(kept, opt.closedCleanly)
	kept = nil
	if err != nil {
		if o.dataW != nil {
			o.unmap()
			o.dataW.Close()
		}
		return nil, fmt.Errorf("open overlay %s: %w", dir, err)
	}
	return o, nil
}

// load recovers the state from dir and starts a new generation; it maps
// the data file, taking kept over if it maps the same file, and releases
// kept otherwise, also when it fails. An overlay closedCleanly needs no
// reclaim.
func (o *Overlay) load(kept *keptMap, closedCleanly bool) error {
	defer func() { kept.release() }() // nil once taken over
	if err := o.fs.MkdirAll(o.dir, 0o700); err != nil {
		return err
	}
	for _, n := range []string{mapName, journalName} {
		if err := o.fs.Remove(filepath.Join(o.dir, n+tmpSuffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	want := mapHeader{blockShift: o.shift, size: o.size}
	buf, err := readMapFile(filepath.Join(o.dir, mapName), maxMapLen(o.blocks))
	fresh := errors.Is(err, os.ErrNotExist)
	switch {
	case fresh:
	case err != nil:
		return err
	default:
		if o.gen, err = decodeMap(buf, want, o.states); err != nil {
			return err
		}
	}
	f, err := o.fs.OpenFile(filepath.Join(o.dir, dataName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	o.dataW, o.data, o.dfd = f, f.OS(), int(f.OS().Fd())
	st, err := o.data.Stat()
	if err != nil {
		return err
	}
	if fresh && st.Size() != 0 {
		// Left by a creation that crashed before its first map: no
		// block was ever acknowledged as durable.
		if err := f.Truncate(0); err != nil {
			return err
		}
	} else if !fresh && st.Size() != o.size {
		return fmt.Errorf("data file has %d bytes, the base %d", st.Size(), o.size)
	}
	if err := f.Truncate(o.size); err != nil {
		return err
	}
	o.ddev, o.dino = fileID(st)
	o.dmap = adoptMapping(kept, o.dfd, o.size, o.ddev, o.dino)
	kept = nil
	var jl journalLoad
	if !fresh {
		jb, err := os.ReadFile(filepath.Join(o.dir, journalName))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		applied, stale, err := replayJournal(jb, o.shift, o.gen, o.states)
		if err != nil {
			return err
		}
		jl = journalLoad{size: int64(len(jb)), good: jHdrLen + int64(applied)*recLen, stale: stale,
			oldMap: len(buf) > 8 && buf[8] != mapFormatV2}
	}
	o.dataBlocks.Store(o.states.countData())
	o.zeroSeen.Store(o.states.hasZero())
	if !closedCleanly {
		if err := o.reclaim(); err != nil {
			return err
		}
	}
	if fresh {
		// Nothing to make durable yet: the first Sync with changes
		// writes the map and the journal (syncLocked), so a client that
		// only reads costs no fsync here. A crash before that leaves no
		// map: reopening starts fresh again, as it should.
		o.unsaved = true
		return nil
	}
	if err := o.dataW.Datasync(); err != nil {
		return err
	}
	return o.resume(jl)
}

// journalLoad is what load found of an existing overlay's journal.
type journalLoad struct {
	size   int64 // bytes in the file
	good   int64 // header and the records replayed
	stale  bool  // missing, torn in its header, or of an older generation
	oldMap bool  // the map is in an older format: rewrite it
}

// diskFull reports whether err says the file system (or the user's
// quota on it) has no room.
func diskFull(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}

// resume starts the reopened overlay's journal. Reopening needs no free
// space: the journal replayed is continued where its last good record
// ends (a torn tail, whose Sync never returned, is cut off first, which
// frees space). The map is rewritten (compacted) only when that pays:
// the journal has grown past the size Sync compacts at, or the map is in
// an older format. A compaction, or the new journal a stale one needs,
// that fails for want of space is given up: the overlay opens as it was
// found (the map and journal on disk describe exactly what it holds) and
// later Syncs retry; its writes fail with ENOSPC until there is room,
// reads work.
func (o *Overlay) resume(jl journalLoad) error {
	o.jsize = jl.good
	if jl.oldMap || !jl.stale && o.journalFull() {
		err := o.compact()
		if err == nil || !diskFull(err) {
			return err
		}
		if o.jbroken { // the new map is in place; its journal is not
			return nil
		}
	}
	if jl.stale {
		if err := o.startJournal(); err != nil && !diskFull(err) {
			return err
		}
		return nil
	}
	j, err := o.fs.OpenFile(filepath.Join(o.dir, journalName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open state journal: %w", err)
	}
	if jl.size > jl.good {
		// Records after the last good one belong to an append whose
		// Sync never returned: nothing may be appended behind them.
		err := j.Truncate(jl.good)
		if err == nil {
			err = j.Datasync()
		}
		if err != nil {
			j.Close()
			return fmt.Errorf("cut torn state journal at %d bytes: %w", jl.good, err)
		}
	}
	o.journal, o.jsize, o.jbroken = j, jl.good, false
	return nil
}

// journalGrown reports whether a journal of size bytes is worth folding
// into the map (journalFull's rule).
func (o *Overlay) journalGrown(size int64) bool {
	return size > max(o.compactAt, mapHdrLen+o.states.entryBytes())
}

// compact writes the whole in-memory map as generation gen+1 and starts
// an empty journal for it. The caller excludes every writer (or is load),
// and the data file has been synced, so the map describes durable data.
func (o *Overlay) compact() error {
	h := mapHeader{blockShift: o.shift, size: o.size, gen: o.gen + 1}
	if err := writeFileAtomic(o.fs, o.dir, mapName, encodeMap(h, o.states), o.testHook); err != nil {
		return fmt.Errorf("write state map: %w", err)
	}
	// From here the new map holds everything; a journal of the old
	// generation is ignored by a reopen.
	o.gen = h.gen
	if o.unsaved {
		// The overlay's first map: from now on its files are kept, so
		// the directory entries above them must become durable too.
		// Cleared here, not when compact returns: a failure writing
		// the journal below must not make later Syncs believe there is
		// nothing on disk to keep durable.
		o.unsaved, o.dirsPending = false, true
	}
	o.pendMu.Lock()
	o.pending = nil
	o.pendMu.Unlock()
	return o.startJournal()
}

// startJournal replaces the journal by an empty one of generation gen,
// whose map is on disk. Until it succeeds, jbroken makes Sync compact.
func (o *Overlay) startJournal() error {
	if o.journal != nil {
		o.journal.Close()
		o.journal = nil
	}
	o.jbroken = true
	hdr := encodeJournalHeader(o.shift, o.gen)
	if err := writeFileAtomic(o.fs, o.dir, journalName, hdr, o.testHook); err != nil {
		o.jbroken = true
		return fmt.Errorf("write state journal: %w", err)
	}
	j, err := o.fs.OpenFile(filepath.Join(o.dir, journalName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		o.jbroken = true
		return fmt.Errorf("open state journal: %w", err)
	}
	o.journal, o.jsize, o.jbroken = j, int64(len(hdr)), false
	return nil
}
