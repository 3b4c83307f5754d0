package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ExportProvider resolves the exports a server offers.
type ExportProvider interface {
	// Export resolves a name the client asked for in INFO, GO,
	// EXPORT_NAME or a meta context option. An error wrapping
	// ErrUnknownExport answers ERR_UNKNOWN, ErrShutdown ERR_SHUTDOWN,
	// ErrPolicy ERR_POLICY; any other error ERR_PLATFORM with its text.
	Export(name string) (ExportInfo, error)
	// Exports lists what NBD_OPT_LIST answers.
	Exports() []ExportInfo
}

// ExportOpener is an ExportProvider that does the work of serving an
// export (opening files) while the client can still be told it failed:
// for GO and EXPORT_NAME, the options that end the handshake, the
// handshake asks OpenExport instead of Export. Its errors are answered as
// Export's: GO gets the error reply and the handshake goes on;
// EXPORT_NAME, which has no error reply, ends the connection. What it
// opened is the provider's to hand over when the handshake returns a
// Session, and to release when the handshake fails after it (the
// acknowledgement could not be sent).
type ExportOpener interface {
	OpenExport(name string) (ExportInfo, error)
}

// ServerOptions tunes ServerHandshake.
type ServerOptions struct {
	// StartTLS upgrades rw after NBD_OPT_STARTTLS was acknowledged. nil:
	// STARTTLS answers ERR_UNSUP. After the upgrade all negotiated state is
	// dropped (CVE-2021-3716).
	StartTLS func(rw io.ReadWriter) (io.ReadWriter, error)
	// TLSRequired answers every option but STARTTLS and ABORT with
	// ERR_TLS_REQD (and closes on EXPORT_NAME) until TLS is up.
	TLSRequired bool
}

// Session is the outcome of a successful server handshake.
type Session struct {
	// Export is what the provider answered; Name is the name the client
	// asked for and Flags include FlagHasFlags.
	Export     ExportInfo
	Structured bool
	// MetaContexts are the contexts agreed by SET_META_CONTEXT for this
	// export (only base:allocation is known).
	MetaContexts []MetaContext
	NoZeroes     bool
	ClientFlags  uint32
	// TLS is set when STARTTLS succeeded.
	TLS bool
	// Conn is rw, or what StartTLS returned.
	Conn io.ReadWriter
}

// MetaContextBaseAllocationID is the ID the server gives base:allocation.
const MetaContextBaseAllocationID uint32 = 1

// ServerHandshake runs the fixed newstyle handshake on rw until GO or
// EXPORT_NAME succeeds (it returns the Session), the client aborts
// (ErrAborted) or disconnects (an error wrapping io.EOF), or the client
// breaks the protocol (an error; the caller closes the connection). The
// caller owns deadlines.
func ServerHandshake(rw io.ReadWriter, p ExportProvider, opts ServerOptions) (*Session, error) {
	s := &serverConn{rw: rw, p: p, opts: opts}
	if err := s.greet(); err != nil {
		return nil, err
	}
	for {
		sess, err := s.option()
		if err != nil || sess != nil {
			return sess, err
		}
	}
}

// serverConn carries the server side of one handshake.
type serverConn struct {
	rw          io.ReadWriter
	p           ExportProvider
	opts        ServerOptions
	clientFlags uint32
	tls         bool
	// State dropped by STARTTLS.
	structured bool
	metaSet    bool
	metaExport string
	metaCtxs   []MetaContext

	hdr  [OptionHeaderSize]byte
	data []byte // option data, reused, at most MaxOptionLen
	out  []byte // reply scratch
}

func (s *serverConn) greet() error {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, ServerGreetingSize), NBDMagic)
	b = binary.BigEndian.AppendUint64(b, IHaveOpt)
	b = binary.BigEndian.AppendUint16(b, FlagFixedNewstyle|FlagNoZeroes)
	if _, err := s.rw.Write(b); err != nil {
		return fmt.Errorf("send greeting: %w", err)
	}
	var cf [4]byte
	if _, err := io.ReadFull(s.rw, cf[:]); err != nil {
		return fmt.Errorf("read client flags: %w", err)
	}
	s.clientFlags = binary.BigEndian.Uint32(cf[:])
	if unknown := s.clientFlags &^ clientFlagsKnown; unknown != 0 {
		return fmt.Errorf("client flags %#x: unknown bits %#x: %w", s.clientFlags, unknown, ErrInvalid)
	}
	return nil
}

func (s *serverConn) noZeroes() bool { return s.clientFlags&ClientFlagNoZeroes != 0 }

// option reads one option and answers it. It returns a Session when the
// handshake is over.
func (s *serverConn) option() (*Session, error) {
	h, data, err := s.readOption()
	if err != nil {
		return nil, err
	}
	sess, err := s.dispatch(h.Option, data)
	if ferr := s.flush(h.Option); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	return sess, nil
}

// readOption reads an option header and its whole data, bounded by
// MaxOptionLen.
func (s *serverConn) readOption() (OptionHeader, []byte, error) {
	if _, err := io.ReadFull(s.rw, s.hdr[:]); err != nil {
		return OptionHeader{}, nil, fmt.Errorf("read option header: %w", err)
	}
	h, err := ParseOptionHeader(s.hdr[:])
	if err != nil {
		return OptionHeader{}, nil, err
	}
	if h.Length > MaxOptionLen {
		return OptionHeader{}, nil, fmt.Errorf("option %s: length %d > %d: %w", OptionName(h.Option), h.Length, MaxOptionLen, ErrTooLong)
	}
	if cap(s.data) < int(h.Length) {
		s.data = make([]byte, h.Length)
	}
	data := s.data[:h.Length]
	if _, err := io.ReadFull(s.rw, data); err != nil {
		return OptionHeader{}, nil, fmt.Errorf("read option %s data: %w", OptionName(h.Option), err)
	}
	return h, data, nil
}

// dispatch queues the replies to one option. A non-nil error ends the
// handshake.
func (s *serverConn) dispatch(option uint32, data []byte) (*Session, error) {
	if s.opts.TLSRequired && !s.tls {
		switch option {
		case OptStartTLS, OptAbort:
		case OptExportName:
			return nil, fmt.Errorf("option EXPORT_NAME before STARTTLS: %w", ErrTLSRequired)
		default:
			s.fail(option, RepErrTLSReqd, "TLS is required")
			return nil, nil
		}
	}
	switch option {
	case OptExportName:
		return s.exportName(data)
	case OptAbort:
		s.reply(OptAbort, RepAck, nil)
		_ = s.flush(OptAbort) // the client may already be gone
		return nil, ErrAborted
	case OptList:
		s.list(data)
	case OptStartTLS:
		return nil, s.startTLS(data)
	case OptInfo, OptGo:
		return s.infoOrGo(option, data), nil
	case OptStructuredReply:
		s.structuredReply(data)
	case OptListMetaContext, OptSetMetaContext:
		s.metaContextOption(option, data)
	default:
		s.fail(option, RepErrUnsup, "option "+OptionName(option)+" not supported")
	}
	return nil, nil
}

// reply queues one option reply; flush sends the queue. All replies to one
// option leave in one write.
func (s *serverConn) reply(option, typ uint32, data []byte) {
	s.out = AppendOptionReply(s.out, option, typ, data)
}

func (s *serverConn) flush(option uint32) error {
	if len(s.out) == 0 {
		return nil
	}
	_, err := s.rw.Write(s.out)
	if cap(s.out) > 64<<10 {
		s.out = nil // do not pin a big LIST reply
	} else {
		s.out = s.out[:0]
	}
	if err != nil {
		return fmt.Errorf("send reply to %s: %w", OptionName(option), err)
	}
	return nil
}

// fail queues an error reply; the handshake goes on.
func (s *serverConn) fail(option, typ uint32, msg string) {
	if len(msg) > MaxStringLen {
		msg = msg[:MaxStringLen]
	}
	s.reply(option, typ, []byte(msg))
}

// failExport answers a provider error.
func (s *serverConn) failExport(option uint32, err error) {
	typ := RepErrPlatform
	switch {
	case errors.Is(err, ErrUnknownExport):
		typ = RepErrUnknown
	case errors.Is(err, ErrShutdown):
		typ = RepErrShutdown
	case errors.Is(err, ErrPolicy):
		typ = RepErrPolicy
	}
	s.fail(option, typ, err.Error())
}

// lookup resolves name; open (GO, EXPORT_NAME) asks an ExportOpener to
// open it.
func (s *serverConn) lookup(name string, open bool) (ExportInfo, error) {
	var (
		e   ExportInfo
		err error
	)
	if o, ok := s.p.(ExportOpener); ok && open {
		e, err = o.OpenExport(name)
	} else {
		e, err = s.p.Export(name)
	}
	if err != nil {
		return ExportInfo{}, err
	}
	e.Name = name
	e.Flags |= FlagHasFlags
	if !s.structured {
		e.Flags &^= FlagSendDF // only meaningful with structured replies
	}
	return e, nil
}

func (s *serverConn) session(e ExportInfo) *Session {
	sess := &Session{
		Export:      e,
		Structured:  s.structured,
		NoZeroes:    s.noZeroes(),
		ClientFlags: s.clientFlags,
		TLS:         s.tls,
		Conn:        s.rw,
	}
	if s.metaSet && s.metaExport == e.Name && len(s.metaCtxs) > 0 {
		sess.MetaContexts = append([]MetaContext(nil), s.metaCtxs...)
	}
	return sess
}

// exportName handles NBD_OPT_EXPORT_NAME, which has no error reply: on
// failure the connection is closed.
func (s *serverConn) exportName(data []byte) (*Session, error) {
	if len(data) > MaxStringLen {
		return nil, fmt.Errorf("option EXPORT_NAME: name length %d > %d: %w", len(data), MaxStringLen, ErrTooLong)
	}
	name := string(data)
	e, err := s.lookup(name, true)
	if err != nil {
		return nil, fmt.Errorf("option EXPORT_NAME %q: %w", name, err)
	}
	b := binary.BigEndian.AppendUint64(make([]byte, 0, ExportNameReplySize+ExportNamePadSize), e.Size)
	b = binary.BigEndian.AppendUint16(b, e.Flags)
	if !s.noZeroes() {
		b = append(b, make([]byte, ExportNamePadSize)...)
	}
	if _, err := s.rw.Write(b); err != nil {
		return nil, fmt.Errorf("send EXPORT_NAME reply for %q: %w", name, err)
	}
	return s.session(e), nil
}

func (s *serverConn) list(data []byte) {
	if len(data) != 0 {
		s.fail(OptList, RepErrInvalid, "LIST carries no data")
		return
	}
	for _, e := range s.p.Exports() {
		name, desc := e.Name, e.Description
		if len(name) > MaxStringLen {
			continue // no client could ask for it
		}
		if len(desc) > MaxStringLen {
			desc = desc[:MaxStringLen]
		}
		s.reply(OptList, RepServer, AppendServerReply(nil, name, desc))
	}
	s.reply(OptList, RepAck, nil)
}

func (s *serverConn) startTLS(data []byte) error {
	switch {
	case len(data) != 0:
		s.fail(OptStartTLS, RepErrInvalid, "STARTTLS carries no data")
		return nil
	case s.opts.StartTLS == nil:
		s.fail(OptStartTLS, RepErrUnsup, "TLS not configured")
		return nil
	case s.tls:
		s.fail(OptStartTLS, RepErrInvalid, "TLS already negotiated")
		return nil
	}
	s.reply(OptStartTLS, RepAck, nil)
	if err := s.flush(OptStartTLS); err != nil {
		return err
	}
	rw, err := s.opts.StartTLS(s.rw)
	if err != nil {
		return fmt.Errorf("option STARTTLS: %w", err)
	}
	s.rw, s.tls = rw, true
	// Nothing negotiated in the clear survives (CVE-2021-3716).
	s.structured, s.metaSet, s.metaExport, s.metaCtxs = false, false, "", nil
	return nil
}

func (s *serverConn) structuredReply(data []byte) {
	switch {
	case len(data) != 0:
		s.fail(OptStructuredReply, RepErrInvalid, "STRUCTURED_REPLY carries no data")
		return
	case s.structured:
		s.fail(OptStructuredReply, RepErrInvalid, "structured replies already negotiated")
		return
	}
	s.structured = true
	s.reply(OptStructuredReply, RepAck, nil)
}

// infoOrGo answers NBD_OPT_INFO and NBD_OPT_GO.
func (s *serverConn) infoOrGo(option uint32, data []byte) *Session {
	r, err := ParseInfoRequest(data)
	if err != nil {
		s.fail(option, RepErrInvalid, err.Error())
		return nil
	}
	e, err := s.lookup(r.Name, option == OptGo)
	if err != nil {
		s.failExport(option, err)
		return nil
	}
	var want [4]bool
	for _, i := range r.Infos {
		if int(i) < len(want) {
			want[i] = true
		}
	}
	s.reply(option, RepInfo, AppendInfo(nil, Info{Type: InfoExport, Size: e.Size, Flags: e.Flags}))
	if want[InfoName] {
		name := e.Name
		if e.Canonical != "" && len(e.Canonical) <= MaxStringLen {
			name = e.Canonical
		}
		s.reply(option, RepInfo, AppendInfo(nil, Info{Type: InfoName, Text: name}))
	}
	if want[InfoDescription] && e.Description != "" {
		desc := e.Description
		if len(desc) > MaxStringLen {
			desc = desc[:MaxStringLen]
		}
		s.reply(option, RepInfo, AppendInfo(nil, Info{Type: InfoDescription, Text: desc}))
	}
	if want[InfoBlockSize] || e.MinBlock != 0 || e.PrefBlock != 0 || e.MaxBlock != 0 {
		bs := blockSizeInfo(e)
		s.reply(option, RepInfo, AppendInfo(nil, bs))
	}
	s.reply(option, RepAck, nil)
	if option == OptGo {
		return s.session(e)
	}
	return nil
}

// blockSizeInfo fills the export's block size constraints with defaults
// where it has none: minimum 1, preferred 4096, maximum MaxPayload.
func blockSizeInfo(e ExportInfo) Info {
	in := Info{Type: InfoBlockSize, MinBlock: e.MinBlock, PrefBlock: e.PrefBlock, MaxBlock: e.MaxBlock}
	if in.MinBlock == 0 {
		in.MinBlock = 1
	}
	if in.PrefBlock == 0 {
		in.PrefBlock = max(4096, in.MinBlock)
	}
	if in.MaxBlock == 0 {
		in.MaxBlock = max(MaxPayload, in.PrefBlock)
	}
	return in
}

// metaContextOption answers LIST_META_CONTEXT and SET_META_CONTEXT. Only the
// base: namespace is known.
func (s *serverConn) metaContextOption(option uint32, data []byte) {
	set := option == OptSetMetaContext
	if set {
		// SET replaces the selection even when it fails.
		s.metaSet, s.metaExport, s.metaCtxs = false, "", nil
	}
	if !s.structured {
		s.fail(option, RepErrInvalid, "structured replies not negotiated")
		return
	}
	r, err := ParseMetaContextRequest(data)
	if errors.Is(err, ErrTooMany) {
		s.fail(option, RepErrTooBig, err.Error())
		return
	}
	if err != nil {
		s.fail(option, RepErrInvalid, err.Error())
		return
	}
	if _, err := s.lookup(r.Export, false); err != nil {
		s.failExport(option, err)
		return
	}
	selected := false
	if !set && len(r.Queries) == 0 {
		selected = true // LIST with no query: everything
	}
	for _, q := range r.Queries {
		if !strings.Contains(q, ":") {
			s.fail(option, RepErrInvalid, fmt.Sprintf("query %q has no namespace", q))
			return
		}
		switch {
		case q == MetaContextBaseAllocation:
			selected = true
		case q == "base:" && !set: // wildcard for LIST only
			selected = true
		}
	}
	if selected {
		id := uint32(0) // LIST: reserved, SHOULD be zero
		if set {
			id = MetaContextBaseAllocationID
		}
		mc := MetaContext{ID: id, Name: MetaContextBaseAllocation}
		s.reply(option, RepMetaContext, AppendMetaContextReply(nil, mc))
		if set {
			s.metaCtxs = []MetaContext{mc}
		}
	}
	if set {
		s.metaSet, s.metaExport = true, r.Export
	}
	s.reply(option, RepAck, nil)
}
