package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ExportInfo describes an export: what the server's provider answers and
// what a client learns in the handshake.
type ExportInfo struct {
	Name, Description string
	Size              uint64
	// Flags are the transmission flags (FlagHasFlags included on the
	// client side).
	Flags uint16
	// Block size constraints; 0 when unknown or not sent.
	MinBlock, PrefBlock, MaxBlock uint32
	// Canonical is the name a server's ExportProvider wants clients to
	// use from now on, sent as NBD_INFO_NAME instead of the requested
	// name (nbdserve: NAME@VERSION, pinning the image version); "" sends
	// the requested name.
	Canonical string
	// Ref is a server's own handle on the export its ExportProvider
	// resolved (never sent): the handshake hands it back in
	// Session.Export, so the name need not be resolved again.
	Ref any
}

// ClientOptions says what ClientHandshake asks for.
type ClientOptions struct {
	Export string
	// Structured asks for NBD_OPT_STRUCTURED_REPLY.
	Structured bool
	// MetaContexts are selected with SET_META_CONTEXT, e.g.
	// []string{MetaContextBaseAllocation}; they need Structured.
	MetaContexts []string
}

func (o ClientOptions) check() error {
	if len(o.Export) > MaxStringLen {
		return fmt.Errorf("client options: export name of %d bytes > %d: %w", len(o.Export), MaxStringLen, ErrTooLong)
	}
	if len(o.MetaContexts) > MaxMetaQueries {
		return fmt.Errorf("client options: %d meta contexts > %d: %w", len(o.MetaContexts), MaxMetaQueries, ErrTooMany)
	}
	for _, m := range o.MetaContexts {
		if len(m) > MaxStringLen || !strings.Contains(m, ":") {
			return fmt.Errorf("client options: meta context %.40q: want namespace:name of at most %d bytes: %w", m, MaxStringLen, ErrInvalid)
		}
	}
	return nil
}

// Negotiated is the outcome of ClientHandshake.
type Negotiated struct {
	ExportInfo
	Structured bool
	// MetaContexts maps the context names the server agreed to their IDs.
	MetaContexts map[string]uint32
	NoZeroes     bool
	// UsedExportName is set when the server did not support NBD_OPT_GO and
	// the client fell back to NBD_OPT_EXPORT_NAME.
	UsedExportName bool
}

// clientInfos are the NBD_INFO items ClientHandshake asks for in GO.
var clientInfos = []uint16{InfoBlockSize, InfoName, InfoDescription}

// ClientHandshake negotiates fixed newstyle on rw. It uses NBD_OPT_GO
// (asking for NBD_INFO_BLOCK_SIZE, NAME and DESCRIPTION) and falls back to
// NBD_OPT_EXPORT_NAME when the server answers GO with ERR_UNSUP or does not
// speak fixed newstyle. An unknown export gives an error wrapping
// ErrUnknownExport. The caller owns deadlines.
func ClientHandshake(rw io.ReadWriter, opts ClientOptions) (Negotiated, error) {
	if err := opts.check(); err != nil {
		return Negotiated{}, err
	}
	c := &clientConn{rw: rw}
	if err := c.greet(); err != nil {
		return Negotiated{}, err
	}
	n := Negotiated{NoZeroes: c.noZeroes}
	if !c.fixed {
		return c.exportName(n, opts.Export)
	}
	if opts.Structured {
		ok, err := c.structuredReply()
		if err != nil {
			return Negotiated{}, err
		}
		n.Structured = ok
	}
	if n.Structured && len(opts.MetaContexts) > 0 {
		m, err := c.setMetaContext(opts.Export, opts.MetaContexts)
		if err != nil {
			return Negotiated{}, err
		}
		n.MetaContexts = m
	}
	info, err := c.infoOrGo(OptGo, opts.Export)
	if errors.Is(err, ErrUnsupported) {
		return c.exportName(n, opts.Export)
	}
	if err != nil {
		return Negotiated{}, fmt.Errorf("handshake for export %q: %w", opts.Export, err)
	}
	n.ExportInfo = info
	return n, nil
}

// ClientInfo asks for an export's details with NBD_OPT_INFO and then ends
// the session with NBD_OPT_ABORT.
func ClientInfo(rw io.ReadWriter, export string) (ExportInfo, error) {
	if err := (ClientOptions{Export: export}).check(); err != nil {
		return ExportInfo{}, err
	}
	c := &clientConn{rw: rw}
	if err := c.greet(); err != nil {
		return ExportInfo{}, err
	}
	if !c.fixed {
		return ExportInfo{}, fmt.Errorf("info for export %q: %w", export, ErrNotFixedNewstyle)
	}
	info, err := c.infoOrGo(OptInfo, export)
	if err != nil {
		return ExportInfo{}, fmt.Errorf("info for export %q: %w", export, err)
	}
	c.abort()
	return info, nil
}

// ClientList runs NBD_OPT_LIST and then NBD_OPT_ABORT; it returns the
// exports' names and descriptions.
func ClientList(rw io.ReadWriter) ([]ExportInfo, error) {
	c := &clientConn{rw: rw}
	if err := c.greet(); err != nil {
		return nil, err
	}
	if !c.fixed {
		return nil, fmt.Errorf("list exports: %w", ErrNotFixedNewstyle)
	}
	if err := c.send(OptList, nil); err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	var out []ExportInfo
	for {
		h, data, err := c.reply(OptList)
		if err != nil {
			return nil, fmt.Errorf("list exports: %w", err)
		}
		switch h.Type {
		case RepAck:
			c.abort()
			return out, nil
		case RepServer:
			name, desc, err := ParseServerReply(data)
			if err != nil {
				return nil, fmt.Errorf("list exports: %w", err)
			}
			out = append(out, ExportInfo{Name: name, Description: desc})
		default:
			return nil, fmt.Errorf("list exports: unexpected reply %s: %w", ReplyName(h.Type), ErrInvalid)
		}
	}
}

// clientConn carries the client side of one handshake.
type clientConn struct {
	rw       io.ReadWriter
	fixed    bool
	noZeroes bool
	hdr      [OptionReplyHeaderSize]byte
}

// greet reads the server's greeting and sends the client flags.
func (c *clientConn) greet() error {
	var b [ServerGreetingSize]byte
	if _, err := io.ReadFull(c.rw, b[:16]); err != nil {
		return fmt.Errorf("read server greeting: %w", err)
	}
	if m := binary.BigEndian.Uint64(b[0:8]); m != NBDMagic {
		return fmt.Errorf("read server greeting: magic %#016x: %w", m, ErrBadMagic)
	}
	switch m := binary.BigEndian.Uint64(b[8:16]); m {
	case IHaveOpt:
	case OldstyleMagic:
		return fmt.Errorf("read server greeting: %w", ErrOldstyle)
	default:
		return fmt.Errorf("read server greeting: second magic %#016x: %w", m, ErrBadMagic)
	}
	if _, err := io.ReadFull(c.rw, b[16:18]); err != nil {
		return fmt.Errorf("read server handshake flags: %w", err)
	}
	hf := binary.BigEndian.Uint16(b[16:18])
	var cf uint32
	if hf&FlagFixedNewstyle != 0 {
		c.fixed = true
		cf |= ClientFlagFixedNewstyle
	}
	if hf&FlagNoZeroes != 0 {
		c.noZeroes = true
		cf |= ClientFlagNoZeroes
	}
	if _, err := c.rw.Write(binary.BigEndian.AppendUint32(nil, cf)); err != nil {
		return fmt.Errorf("send client flags: %w", err)
	}
	return nil
}

func (c *clientConn) send(option uint32, data []byte) error {
	if _, err := c.rw.Write(AppendOption(make([]byte, 0, OptionHeaderSize+len(data)), option, data)); err != nil {
		return fmt.Errorf("send option %s: %w", OptionName(option), err)
	}
	return nil
}

// reply reads one option reply to option. Error replies come back as
// *OptionError.
func (c *clientConn) reply(option uint32) (OptionReplyHeader, []byte, error) {
	if _, err := io.ReadFull(c.rw, c.hdr[:]); err != nil {
		return OptionReplyHeader{}, nil, fmt.Errorf("read reply to %s: %w", OptionName(option), err)
	}
	h, err := ParseOptionReplyHeader(c.hdr[:])
	if err != nil {
		return OptionReplyHeader{}, nil, err
	}
	if h.Option != option {
		return OptionReplyHeader{}, nil, fmt.Errorf("reply to %s names option %s: %w", OptionName(option), OptionName(h.Option), ErrInvalid)
	}
	if h.Length > MaxOptionLen {
		return OptionReplyHeader{}, nil, fmt.Errorf("reply %s to %s: length %d > %d: %w", ReplyName(h.Type), OptionName(option), h.Length, MaxOptionLen, ErrTooLong)
	}
	data := make([]byte, h.Length)
	if _, err := io.ReadFull(c.rw, data); err != nil {
		return OptionReplyHeader{}, nil, fmt.Errorf("read reply %s to %s: %w", ReplyName(h.Type), OptionName(option), err)
	}
	if h.Type&RepFlagError != 0 {
		msg := data
		if len(msg) > MaxStringLen {
			msg = msg[:MaxStringLen]
		}
		return h, nil, &OptionError{Option: option, Reply: h.Type, Message: string(msg)}
	}
	return h, data, nil
}

// structuredReply asks for structured replies; false when refused.
func (c *clientConn) structuredReply() (bool, error) {
	if err := c.send(OptStructuredReply, nil); err != nil {
		return false, err
	}
	h, _, err := c.reply(OptStructuredReply)
	var oe *OptionError
	if errors.As(err, &oe) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if h.Type != RepAck {
		return false, fmt.Errorf("reply to STRUCTURED_REPLY: %s: %w", ReplyName(h.Type), ErrInvalid)
	}
	return true, nil
}

// setMetaContext selects contexts; an ERR_UNSUP selects none.
func (c *clientConn) setMetaContext(export string, queries []string) (map[string]uint32, error) {
	data := AppendMetaContextRequest(nil, MetaContextRequest{Export: export, Queries: queries})
	if err := c.send(OptSetMetaContext, data); err != nil {
		return nil, err
	}
	m := map[string]uint32{}
	for {
		h, data, err := c.reply(OptSetMetaContext)
		if errors.Is(err, ErrUnsupported) {
			return map[string]uint32{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("set meta context for export %q: %w", export, err)
		}
		switch h.Type {
		case RepAck:
			return m, nil
		case RepMetaContext:
			mc, err := ParseMetaContextReply(data)
			if err != nil {
				return nil, fmt.Errorf("set meta context for export %q: %w", export, err)
			}
			if len(m) >= MaxMetaQueries {
				return nil, fmt.Errorf("set meta context for export %q: more than %d contexts: %w", export, MaxMetaQueries, ErrTooMany)
			}
			m[mc.Name] = mc.ID
		default:
			return nil, fmt.Errorf("set meta context for export %q: unexpected reply %s: %w", export, ReplyName(h.Type), ErrInvalid)
		}
	}
}

// infoOrGo runs NBD_OPT_INFO or NBD_OPT_GO and gathers the NBD_INFO replies.
func (c *clientConn) infoOrGo(option uint32, export string) (ExportInfo, error) {
	data := AppendInfoRequest(nil, InfoRequest{Name: export, Infos: clientInfos})
	if err := c.send(option, data); err != nil {
		return ExportInfo{}, err
	}
	info := ExportInfo{Name: export}
	haveExport := false
	for {
		h, data, err := c.reply(option)
		if err != nil {
			return ExportInfo{}, err
		}
		switch h.Type {
		case RepAck:
			if !haveExport {
				return ExportInfo{}, fmt.Errorf("%s acknowledged without NBD_INFO_EXPORT: %w", OptionName(option), ErrInvalid)
			}
			return info, nil
		case RepInfo:
			in, err := ParseInfo(data)
			if err != nil {
				return ExportInfo{}, err
			}
			switch in.Type {
			case InfoExport:
				haveExport = true
				info.Size, info.Flags = in.Size, in.Flags
			case InfoName:
				info.Name = in.Text
			case InfoDescription:
				info.Description = in.Text
			case InfoBlockSize:
				info.MinBlock, info.PrefBlock, info.MaxBlock = in.MinBlock, in.PrefBlock, in.MaxBlock
			}
		default:
			return ExportInfo{}, fmt.Errorf("%s: unexpected reply %s: %w", OptionName(option), ReplyName(h.Type), ErrInvalid)
		}
	}
}

// exportName ends the handshake with NBD_OPT_EXPORT_NAME. The server closes
// the connection when it refuses the export.
func (c *clientConn) exportName(n Negotiated, export string) (Negotiated, error) {
	if err := c.send(OptExportName, []byte(export)); err != nil {
		return Negotiated{}, err
	}
	var b [ExportNameReplySize + ExportNamePadSize]byte
	size := ExportNameReplySize
	if !c.noZeroes {
		size += ExportNamePadSize
	}
	if _, err := io.ReadFull(c.rw, b[:size]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Negotiated{}, fmt.Errorf("export %q: server closed the connection after EXPORT_NAME: %w", export, ErrUnknownExport)
		}
		return Negotiated{}, fmt.Errorf("export %q: read EXPORT_NAME reply: %w", export, err)
	}
	n.Name = export
	n.Size = binary.BigEndian.Uint64(b[0:8])
	n.Flags = binary.BigEndian.Uint16(b[8:10])
	n.UsedExportName = true
	return n, nil
}

// abort ends option haggling politely; the server may close without a reply.
func (c *clientConn) abort() {
	if c.send(OptAbort, nil) != nil {
		return
	}
	_, _, _ = c.reply(OptAbort)
}
