package cow

import (
	"fmt"

	"github.com/nbdboot/nbdboot/internal/nowait"
)

// journalMin is the journal size below which Sync never compacts.
const journalMin = 256 << 10

// Sync is the server.Backend method (FLUSH, FUA). When it returns nil, every
// write, trim and zero that completed before it was called is durable:
// the data file is fdatasynced first, then the state changes of those
// operations are appended to the journal and the journal is fdatasynced.
// A state change never reaches the disk before the data it describes.
func (o *Overlay) Sync() error {
	o.syncMu.Lock()
	defer o.syncMu.Unlock()
	if o.closed {
		return fmt.Errorf("sync overlay %s: %w", o.dir, ErrClosed)
	}
	return o.syncLocked()
}

func (o *Overlay) syncLocked() error {
	if p := o.failed.Load(); p != nil {
		return fmt.Errorf("sync overlay %s: failed earlier: %w", o.dir, *p)
	}
	if err := o.saveState(); err != nil {
		return err
	}
	if o.dirsPending {
		// The first map made the overlay's files worth keeping: make the
		// entries above them durable (retried until it succeeds).
		if err := makeDirDurable(o.fs, o.dir); err != nil {
			return fmt.Errorf("sync overlay %s: %w", o.dir, err)
		}
		o.dirsPending = false
	}
	return nil
}

// saveState makes the data file and the state changes durable.
func (o *Overlay) saveState() error {
	if o.unsaved {
		o.pendMu.Lock()
		changed := len(o.pending) > 0
		o.pendMu.Unlock()
		if !changed {
			// No state to save: every block still reads the base, and
			// the data file holds nothing a reopen would read.
			return nil
		}
		return o.compactLive()
	}
	if o.jbroken {
		return o.compactLive()
	}
	if o.journalFull() {
		err := o.compactLive()
		if err == nil || o.jbroken || !diskFull(err) {
			return err
		}
		// No room for a new map: the journal, untouched, takes the
		// changes as usual (its last block may have room), and a later
		// Sync compacts once there is space.
	}
	o.pendMu.Lock()
	batch := o.pending
	o.pending = nil
	o.pendMu.Unlock()
	if err := o.fdatasync(); err != nil {
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	buf := make([]byte, 0, len(batch)*recLen)
	for _, r := range batch {
		buf = appendRecord(buf, o.gen, r)
	}
	err := writeAll(o.journal, buf)
	if err == nil {
		err = o.journal.Datasync()
	}
	if err != nil {
		// The journal may now end in a torn record, which a reopen
		// would stop at: rewrite the whole map on the next Sync. The
		// batch stays in memory (the map in memory already has it).
		o.jbroken = true
		return fmt.Errorf("sync overlay %s: append state journal: %w", o.dir, err)
	}
	o.jsize += int64(len(buf))
	return nil
}

// journalFull reports whether the journal has grown past both compactAt
// and the map's size, so that rewriting the map costs less than reading
// the journal at the next open. Tests set compactAt to 0 to compact at
// every Sync.
func (o *Overlay) journalFull() bool {
	return o.compactAt == 0 || o.journalGrown(o.jsize)
}

// compactLive rewrites the map with every writer excluded.
func (o *Overlay) compactLive() error {
	defer o.locks.lockAll()()
	if err := o.fdatasync(); err != nil {
		return err
	}
	if err := o.compact(); err != nil {
		return fmt.Errorf("sync overlay %s: %w", o.dir, err)
	}
	return nil
}

// fdatasync syncs the data file. A failure is sticky: after a failed
// fdatasync the kernel may have dropped the dirty pages, so nothing the
// overlay later says about durability could be trusted.
func (o *Overlay) fdatasync() error {
	if err := o.dataW.Datasync(); err != nil {
		o.failed.CompareAndSwap(nil, &err)
		return fmt.Errorf("sync overlay %s: %w", o.dir, err)
	}
	return nil
}

// Close is the server.Backend method: it syncs and closes the files. The
// overlay must not be used afterwards; a second Close does nothing.
func (o *Overlay) Close() error {
	_, err := o.close(false)
	return err
}

// close is Close; with keep, it returns the data file's mapping (nil if
// none) instead of unmapping it, for a later Open of the same files
// (keptmap.go).
func (o *Overlay) close(keep bool) (*keptMap, error) {
	o.syncMu.Lock()
	defer o.syncMu.Unlock()
	if o.closed {
		return nil, nil
	}
	o.closed = true
	err := o.syncLocked()
	if o.journal != nil {
		if cerr := o.journal.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close journal of overlay %s: %w", o.dir, cerr)
		}
	}
	var k *keptMap
	if keep && o.dmap != nil {
		k = &keptMap{m: o.dmap, dev: o.ddev, ino: o.dino}
		o.dmap = nil
	}
	o.unmap()
	if cerr := o.dataW.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close overlay %s: %w", o.dir, cerr)
	}
	return k, err
}

// abandon closes the files without syncing anything: what a kill -9 of
// the server does to the overlay. Tests use it to simulate crashes.
func (o *Overlay) abandon() {
	o.syncMu.Lock()
	defer o.syncMu.Unlock()
	o.closed = true
	if o.journal != nil {
		o.journal.Close()
	}
	o.unmap()
	o.dataW.Close()
}

// unmap unmaps the data file; no READ is lent from it any more (the
// server ends its replies before it gives an overlay back).
func (o *Overlay) unmap() {
	nowait.Unmap(o.dmap)
	o.dmap = nil
}

func writeAll(f interface{ Write([]byte) (int, error) }, b []byte) error {
	_, err := f.Write(b)
	return err
}
