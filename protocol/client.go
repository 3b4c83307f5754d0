package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
)

// ErrProtocol marks a reply that breaks the protocol; the Client is unusable
// afterwards.
var ErrProtocol = errors.New("protocol violation")

// Client is a simple synchronous transmission-phase client: one request in
// flight at a time. It checks the server's replies strictly, so tests of the
// server can rely on it. It is not safe for concurrent use.
type Client struct {
	conn   net.Conn
	n      Negotiated
	cookie uint64
	hdr    [ChunkHeaderSize]byte
	wbuf   []byte
	broken error
}

// NewClient returns a Client for a connection that finished the handshake
// with the outcome n.
func NewClient(conn net.Conn, n Negotiated) *Client {
	return &Client{conn: conn, n: n}
}

// Negotiated returns what the handshake agreed.
func (c *Client) Negotiated() Negotiated { return c.n }

// Reply is the whole reply to one request.
type Reply struct {
	// Errno is the simple reply's error, or that of the first error chunk.
	Errno Errno
	// Message is the first error chunk's message.
	Message string
	// ErrorOffset is the offset of the first ERROR_OFFSET chunk, if any.
	ErrorOffset    uint64
	HasErrorOffset bool
	// Data is the assembled result of a successful READ.
	Data []byte
	// Extents are the BLOCK_STATUS descriptors per metadata context ID.
	Extents map[uint32][]Extent
	// Chunks are the structured chunk headers received, in order; nil for a
	// simple reply.
	Chunks []Chunk
}

// Do sends req (with its cookie as given) and a WRITE's payload, and reads
// the whole reply. A command error is reported in Reply.Errno, not as an
// error; the error is for transport failures and protocol violations
// (ErrProtocol), after which the Client is unusable. DISC has no reply: Do
// returns a nil Reply.
func (c *Client) Do(req Request, payload []byte) (*Reply, error) {
	if c.broken != nil {
		return nil, c.broken
	}
	r, err := c.do(req, payload)
	if err != nil {
		c.broken = fmt.Errorf("%s offset %d length %d: %w", CommandName(req.Type), req.Offset, req.Length, err)
		return nil, c.broken
	}
	return r, nil
}

func (c *Client) do(req Request, payload []byte) (*Reply, error) {
	c.wbuf = append(AppendRequest(c.wbuf[:0], req), payload...)
	if _, err := c.conn.Write(c.wbuf); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	if len(c.wbuf) > 1<<20 {
		c.wbuf = nil // do not pin big write buffers
	}
	if req.Type == CmdDisc {
		return nil, nil
	}
	h, err := ReadReplyHeader(c.conn, c.hdr[:])
	if err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	if h.Cookie != req.Cookie {
		return nil, fmt.Errorf("reply cookie %#x, want %#x: %w", h.Cookie, req.Cookie, ErrProtocol)
	}
	if !h.Structured {
		return c.simpleReply(req, h)
	}
	if !c.n.Structured {
		return nil, fmt.Errorf("structured reply without negotiating it: %w", ErrProtocol)
	}
	return c.structuredReply(req, h.Chunk)
}

func (c *Client) simpleReply(req Request, h ReplyHeader) (*Reply, error) {
	r := &Reply{Errno: Errno(h.Errno)}
	switch {
	case req.Type == CmdBlockStatus && h.Errno == 0:
		return nil, fmt.Errorf("simple reply to BLOCK_STATUS without error: %w", ErrProtocol)
	case req.Type != CmdRead || h.Errno != 0:
		return r, nil
	case c.n.Structured:
		return nil, fmt.Errorf("simple reply with data to READ after structured replies were negotiated: %w", ErrProtocol)
	case req.Length > MaxPayload:
		return nil, fmt.Errorf("READ of %d bytes > %d: %w", req.Length, MaxPayload, ErrTooLong)
	}
	r.Data = make([]byte, req.Length)
	if _, err := io.ReadFull(c.conn, r.Data); err != nil {
		return nil, fmt.Errorf("read READ data: %w", err)
	}
	return r, nil
}

// span is a byte range of a READ covered by a content chunk.
type span struct{ start, end uint64 }

// structuredReply reads chunks until one has the DONE flag.
func (c *Client) structuredReply(req Request, ch Chunk) (*Reply, error) {
	r := &Reply{}
	var spans []span
	for {
		r.Chunks = append(r.Chunks, ch) // unknown chunk flags are ignored
		if err := c.chunk(req, ch, r, &spans); err != nil {
			return nil, fmt.Errorf("chunk %d (type %d): %w", len(r.Chunks)-1, ch.Type, err)
		}
		if ch.Flags&ChunkFlagDone != 0 {
			break
		}
		h, err := ReadReplyHeader(c.conn, c.hdr[:])
		if err != nil {
			return nil, fmt.Errorf("read chunk header: %w", err)
		}
		if !h.Structured {
			return nil, fmt.Errorf("simple reply inside a structured reply: %w", ErrProtocol)
		}
		if h.Cookie != req.Cookie {
			return nil, fmt.Errorf("chunk cookie %#x, want %#x: %w", h.Cookie, req.Cookie, ErrProtocol)
		}
		ch = h.Chunk
	}
	return r, c.checkComplete(req, r, spans)
}

// checkComplete checks a finished structured reply as a whole.
func (c *Client) checkComplete(req Request, r *Reply, spans []span) error {
	if r.Errno != 0 {
		r.Data, r.Extents = nil, nil
		return nil
	}
	switch req.Type {
	case CmdRead:
		slices.SortFunc(spans, func(a, b span) int {
			if a.start < b.start {
				return -1
			}
			if a.start > b.start {
				return 1
			}
			return 0
		})
		next := req.Offset
		for _, s := range spans {
			if s.start != next {
				return fmt.Errorf("READ reply leaves a gap or overlap at offset %d: %w", next, ErrProtocol)
			}
			next = s.end
		}
		if next != req.Offset+uint64(req.Length) {
			return fmt.Errorf("READ reply covers up to offset %d, want %d: %w", next, req.Offset+uint64(req.Length), ErrProtocol)
		}
		if r.Data == nil {
			r.Data = []byte{}
		}
	case CmdBlockStatus:
		for name, id := range c.n.MetaContexts {
			if _, ok := r.Extents[id]; !ok {
				return fmt.Errorf("BLOCK_STATUS reply lacks context %s (id %d): %w", name, id, ErrProtocol)
			}
		}
	}
	return nil
}

// maxChunkLen bounds a chunk payload that is not READ data.
const maxChunkLen = 4 + BlockStatusDescSize*MaxBlockStatusExtents

// chunk reads one chunk's payload and folds it into r.
func (c *Client) chunk(req Request, ch Chunk, r *Reply, spans *[]span) error {
	if ch.Type == ChunkOffsetData {
		return c.offsetData(req, ch, r, spans)
	}
	if ch.Length > maxChunkLen {
		return fmt.Errorf("payload length %d > %d: %w", ch.Length, maxChunkLen, ErrTooLong)
	}
	b := make([]byte, ch.Length)
	if _, err := io.ReadFull(c.conn, b); err != nil {
		return fmt.Errorf("read payload: %w", err)
	}
	switch {
	case ch.Type == ChunkNone:
		if ch.Length != 0 || ch.Flags&ChunkFlagDone == 0 {
			return fmt.Errorf("NONE chunk with length %d flags %#x: %w", ch.Length, ch.Flags, ErrProtocol)
		}
	case ch.Type == ChunkOffsetHole:
		if req.Type != CmdRead {
			return fmt.Errorf("OFFSET_HOLE in reply to %s: %w", CommandName(req.Type), ErrProtocol)
		}
		off, n, err := ParseOffsetHole(b)
		if err != nil {
			return fmt.Errorf("%w: %w", err, ErrProtocol)
		}
		if _, err := c.readSpan(req, r, spans, off, uint64(n)); err != nil {
			return err
		}
	case ch.Type == ChunkBlockStatus:
		if req.Type != CmdBlockStatus {
			return fmt.Errorf("BLOCK_STATUS chunk in reply to %s: %w", CommandName(req.Type), ErrProtocol)
		}
		id, ext, err := ParseBlockStatus(b, nil)
		if err != nil {
			return fmt.Errorf("%w: %w", err, ErrProtocol)
		}
		if !c.knownContext(id) {
			return fmt.Errorf("BLOCK_STATUS for unknown context id %d: %w", id, ErrProtocol)
		}
		if r.Extents == nil {
			r.Extents = map[uint32][]Extent{}
		}
		if _, dup := r.Extents[id]; dup {
			return fmt.Errorf("second BLOCK_STATUS chunk for context id %d: %w", id, ErrProtocol)
		}
		if req.Flags&CmdFlagReqOne != 0 && len(ext) != 1 {
			return fmt.Errorf("%d extents despite REQ_ONE: %w", len(ext), ErrProtocol)
		}
		r.Extents[id] = ext
	case ch.Type&0x8000 != 0:
		e, err := ParseChunkError(ch.Type, b)
		if err != nil {
			return fmt.Errorf("%w: %w", err, ErrProtocol)
		}
		if e.Errno == 0 {
			return fmt.Errorf("error chunk with error 0: %w", ErrProtocol)
		}
		if r.Errno == 0 {
			r.Errno, r.Message = Errno(e.Errno), e.Message
			r.ErrorOffset, r.HasErrorOffset = e.Offset, e.HasOffset
		}
	default:
		return fmt.Errorf("unknown chunk type %d: %w", ch.Type, ErrProtocol)
	}
	return nil
}

func (c *Client) knownContext(id uint32) bool {
	for _, v := range c.n.MetaContexts {
		if v == id {
			return true
		}
	}
	return false
}

// readSpan checks that [off, off+n) lies inside the READ request and
// returns the slice of r.Data it covers.
func (c *Client) readSpan(req Request, r *Reply, spans *[]span, off, n uint64) ([]byte, error) {
	end := off + n
	if off < req.Offset || end < off || end > req.Offset+uint64(req.Length) {
		return nil, fmt.Errorf("content [%d, %d) outside the request [%d, %d): %w", off, end, req.Offset, req.Offset+uint64(req.Length), ErrProtocol)
	}
	if req.Length > MaxPayload {
		return nil, fmt.Errorf("READ of %d bytes > %d: %w", req.Length, MaxPayload, ErrTooLong)
	}
	if r.Data == nil {
		r.Data = make([]byte, req.Length)
	}
	*spans = append(*spans, span{off, end})
	return r.Data[off-req.Offset : end-req.Offset], nil
}

// offsetData reads an OFFSET_DATA payload straight into the READ buffer.
func (c *Client) offsetData(req Request, ch Chunk, r *Reply, spans *[]span) error {
	if req.Type != CmdRead {
		return fmt.Errorf("OFFSET_DATA in reply to %s: %w", CommandName(req.Type), ErrProtocol)
	}
	if ch.Length <= OffsetDataPrefixSize {
		return fmt.Errorf("OFFSET_DATA of length %d: %w", ch.Length, ErrProtocol)
	}
	var ob [OffsetDataPrefixSize]byte
	if _, err := io.ReadFull(c.conn, ob[:]); err != nil {
		return fmt.Errorf("read OFFSET_DATA offset: %w", err)
	}
	dst, err := c.readSpan(req, r, spans, binary.BigEndian.Uint64(ob[:]), uint64(ch.Length-OffsetDataPrefixSize))
	if err != nil {
		return err
	}
	if _, err := io.ReadFull(c.conn, dst); err != nil {
		return fmt.Errorf("read OFFSET_DATA data: %w", err)
	}
	return nil
}

// roundTrip runs one command with the next cookie and turns a command error
// into an Errno error.
func (c *Client) roundTrip(typ, flags uint16, off uint64, length uint32, payload []byte) (*Reply, error) {
	c.cookie++
	req := Request{Flags: flags, Type: typ, Cookie: c.cookie, Offset: off, Length: length}
	r, err := c.Do(req, payload)
	if err != nil {
		return nil, err
	}
	if r.Errno != 0 {
		return r, fmt.Errorf("%s offset %d length %d: %w", CommandName(typ), off, length, r.Errno)
	}
	return r, nil
}

// maxRequest is the largest READ/WRITE length sent in one request.
func (c *Client) maxRequest() int {
	if m := c.n.MaxBlock; m != 0 && m < MaxPayload {
		return int(m)
	}
	return MaxPayload
}

// ReadAt reads len(p) bytes at off, in requests of at most the export's
// maximum block size.
func (c *Client) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("READ at offset %d: negative offset: %w", off, ErrInvalid)
	}
	done := 0
	for done < len(p) {
		n := min(len(p)-done, c.maxRequest())
		r, err := c.roundTrip(CmdRead, 0, uint64(off)+uint64(done), uint32(n), nil)
		if err != nil {
			return done, err
		}
		done += copy(p[done:done+n], r.Data)
	}
	return done, nil
}

// WriteAt writes p at off with the command flags (e.g. CmdFlagFUA).
func (c *Client) WriteAt(p []byte, off int64, flags uint16) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("WRITE at offset %d: negative offset: %w", off, ErrInvalid)
	}
	done := 0
	for done < len(p) {
		n := min(len(p)-done, c.maxRequest())
		if _, err := c.roundTrip(CmdWrite, flags, uint64(off)+uint64(done), uint32(n), p[done:done+n]); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// Flush sends NBD_CMD_FLUSH.
func (c *Client) Flush() error {
	_, err := c.roundTrip(CmdFlush, 0, 0, 0, nil)
	return err
}

// Trim sends NBD_CMD_TRIM.
func (c *Client) Trim(off uint64, length uint32, flags uint16) error {
	_, err := c.roundTrip(CmdTrim, flags, off, length, nil)
	return err
}

// WriteZeroes sends NBD_CMD_WRITE_ZEROES (flags e.g. CmdFlagNoHole).
func (c *Client) WriteZeroes(off uint64, length uint32, flags uint16) error {
	_, err := c.roundTrip(CmdWriteZeroes, flags, off, length, nil)
	return err
}

// Cache sends NBD_CMD_CACHE.
func (c *Client) Cache(off uint64, length uint32) error {
	_, err := c.roundTrip(CmdCache, 0, off, length, nil)
	return err
}

// BlockStatus sends NBD_CMD_BLOCK_STATUS and returns the base:allocation
// extents (flags e.g. CmdFlagReqOne). It needs that context negotiated.
func (c *Client) BlockStatus(off uint64, length uint32, flags uint16) ([]Extent, error) {
	id, ok := c.n.MetaContexts[MetaContextBaseAllocation]
	if !ok {
		return nil, fmt.Errorf("BLOCK_STATUS: context %s not negotiated: %w", MetaContextBaseAllocation, ErrInvalid)
	}
	r, err := c.roundTrip(CmdBlockStatus, flags, off, length, nil)
	if err != nil {
		return nil, err
	}
	return r.Extents[id], nil
}

// Disconnect sends NBD_CMD_DISC and closes the connection.
func (c *Client) Disconnect() error {
	var err error
	if c.broken == nil {
		c.cookie++
		_, err = c.Do(Request{Type: CmdDisc, Cookie: c.cookie}, nil)
	}
	if cerr := c.conn.Close(); err == nil {
		err = cerr
	}
	return err
}
