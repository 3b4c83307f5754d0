package server

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A read-only file served by a FileBackend (a base image) may be changed
// by another program while it is served: truncated, or rewritten in
// place. The allocation map and the page cache would then go on answering
// for content that is gone: a range cut off that was a hole, or that the
// map had learnt, reads as zeroes and BLOCK_STATUS calls it "hole, zero",
// so a copy completes with zeroes. So the backend checks the file (fstat)
// at a cheap cadence: when a connection acquires the export, on every
// READ and BLOCK_STATUS that takes the slow path (which is where the map
// learns regions), and on the fast path once a check is older than
// fileCheckInterval (a timer raises a flag; the fast path reads it, one
// atomic load). Once the file is found shorter than it is served, every
// READ and BLOCK_STATUS reaching past its current size fails with EIO;
// once its modification time changed otherwise (rewritten in place),
// every READ and BLOCK_STATUS fails with EIO (unless this process wrote
// it, through a writable export of the same file: then only a shrinking
// counts). A file replaced by rename is
// no change: the open file is still the one served (a reload serves the
// new one to new connections).

// fileCheckInterval bounds the age of the fast path's last check.
var fileCheckInterval = 100 * time.Millisecond

// errFileChanged fails requests on a file changed while served.
var errFileChanged = errors.New("file changed while served")

// fileCheck watches one read-only regular file; nil watches nothing.
type fileCheck struct {
	fd   int
	name string
	// ours reports whether this process changed the file (through a
	// writable export of it): its modification time then says nothing.
	ours  func() bool
	size  int64 // as served
	mtime unix.Timespec
	// valid is how many bytes from the start still are what is served:
	// size, the current size if the file shrank, 0 if it was rewritten.
	valid  atomic.Int64
	due    atomic.Bool // a check is older than fileCheckInterval
	timer  *time.Timer // raises due
	closed atomic.Bool
}

func newFileCheck(fd int, name string, st *unix.Stat_t, ours func() bool) *fileCheck {
	c := &fileCheck{fd: fd, name: name, size: st.Size, mtime: st.Mtim, ours: ours}
	c.valid.Store(st.Size)
	c.timer = time.AfterFunc(fileCheckInterval, func() { c.due.Store(true) })
	return c
}

// recheck stats the file now.
func (c *fileCheck) recheck() {
	if c == nil || c.closed.Load() {
		return
	}
	c.due.Store(false)
	c.timer.Reset(fileCheckInterval)
	var st unix.Stat_t
	if unix.Fstat(c.fd, &st) != nil {
		return // the descriptor is ours: this does not fail while open
	}
	valid := c.size
	switch {
	case st.Size < c.size:
		valid = st.Size
	case st.Mtim != c.mtime && !c.ours():
		valid = 0
	}
	for v := c.valid.Load(); valid < v && !c.valid.CompareAndSwap(v, valid); v = c.valid.Load() {
	} // valid only ever shrinks: a change is not undone
}

// check fails if [off, off+length) is no longer what is served; with
// cadence it first stats the file if the last check is old.
func (c *fileCheck) check(off, length int64, cadence bool) error {
	if c == nil {
		return nil
	}
	if cadence && c.due.Load() {
		c.recheck()
	}
	v := c.valid.Load()
	if off+length <= v {
		return nil
	}
	if v == 0 {
		return fmt.Errorf("%s: %w (rewritten): %w", c.name, errFileChanged, syscall.EIO)
	}
	return fmt.Errorf("%s: %w (now %d bytes, served as %d): [%d, %d) is gone: %w",
		c.name, errFileChanged, v, c.size, off, off+length, syscall.EIO)
}

// stop ends the timer.
func (c *fileCheck) stop() {
	if c == nil {
		return
	}
	c.closed.Store(true)
	c.timer.Stop()
}
