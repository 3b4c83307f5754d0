package cow

// BaseMapped is the optional in-place access of a Base: the server's
// read-only mapping of its file, from which it sends large READs without
// copying them into a buffer first.
type BaseMapped interface {
	// Mapped returns [off, off+n) of the mapping, or nil.
	Mapped(off, n int64) []byte
	// Resident reports whether every page of p, a slice of the
	// mapping, is in the page cache.
	Resident(p []byte) bool
}

// Mapped lends [off, off+n) in place from the base's mapping when its
// blocks are all Base, so that a large READ of what the client never
// wrote costs what it costs on the plain export; else nil (the server
// then reads into a buffer). As for a read of Base blocks, no lock is
// needed: the blocks were all Base when seen, and the base's bytes never
// change, however late the server sends them.
func (o *Overlay) Mapped(off, n int64) []byte {
	if o.baseMap == nil || n <= 0 || o.check("read", off, n) != nil {
		return nil
	}
	if !o.states.allBase(off>>o.shift, (off+n-1)>>o.shift) {
		return nil
	}
	return o.baseMap.Mapped(off, n)
}

// Resident reports whether every page of p, a slice Mapped returned, is
// in the page cache.
func (o *Overlay) Resident(p []byte) bool { return o.baseMap != nil && o.baseMap.Resident(p) }
