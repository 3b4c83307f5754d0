package cow

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nbdboot/nbdboot/internal/disk"
)

// Open opens the overlay stored in dir over base, creating it if dir holds
// none. An existing overlay's state is recovered: its map, then the journal
// records that were completely written; everything since the last Sync
// that did not reach the journal reads as it did before.
func Open(dir string, base Base, opt Options) (*Overlay, error) {
	return open(dir, base, opt, nil)
}

func open(dir string, base Base, opt Options, hook func(string) error) (*Overlay, error) {
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
		dir: dir, base: base, size: size, shift: shift, bs: bs,
		blocks: (size + bs - 1) >> shift, quotaBlocks: opt.Quota >> shift,
		zeroes: make([]byte, bs), testHook: hook, compactAt: journalMin, fs: opt.FS,
	}
	if o.fs == nil {
		o.fs = disk.OS{}
	}
	if opt.Quota > 0 && o.quotaBlocks == 0 {
		return nil, fmt.Errorf("open overlay %s: quota %d is smaller than one %d-byte block", dir, opt.Quota, bs)
	}
	o.baseExt, _ = base.(BaseExtents)
	o.bufs.New = func() any { b := make([]byte, bs); return &b }
	o.states = newStateMap(o.blocks)
	if err := o.load(); err != nil {
		if o.dataW != nil {
			o.dataW.Close()
		}
		return nil, fmt.Errorf("open overlay %s: %w", dir, err)
	}
	return o, nil
}

// load recovers the state from dir and starts a new generation.
func (o *Overlay) load() error {
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
	if !fresh {
		jb, err := os.ReadFile(filepath.Join(o.dir, journalName))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if _, _, err := replayJournal(jb, o.shift, o.gen, o.states); err != nil {
			return err
		}
	}
	o.dataBlocks.Store(o.states.countData())
	o.zeroSeen.Store(o.states.hasZero())
	if err := o.reclaim(); err != nil {
		return err
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
	return o.compact()
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
	if o.journal != nil {
		o.journal.Close()
		o.journal = nil
	}
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
