package cow

import "github.com/nbdboot/nbdboot/internal/nowait"

// A reopened overlay maps its data file afresh: its first lent READs
// would each take page faults (and a page-cache lookup per page in the
// residency check) for Data blocks whose pages are in the page cache
// all along, while the base's mapping, the server's for as long as the
// export is served, has them in its page tables already. So an overlay
// opened over an existing data file warms its mapping in the background
// (nowait.Warm: resident pages only, nothing read from the disk), while
// its client is served; unmap stops it first.

// startWarm starts warming the data file's mapping.
func (o *Overlay) startWarm() {
	if o.dmap == nil {
		return
	}
	done := make(chan struct{})
	o.warmDone = done
	go func(m []byte) {
		defer close(done)
		// A failure leaves the rest of the pages to be entered by the
		// first sends, as without warming: nothing to report.
		_ = nowait.Warm(m, &o.warmStop)
	}(o.dmap)
}

// stopWarm stops the warming and waits until it no longer uses the
// mapping.
func (o *Overlay) stopWarm() {
	if o.warmDone == nil {
		return
	}
	o.warmStop.Store(true)
	<-o.warmDone
	o.warmDone = nil
}
