package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Handshake message sizes.
const (
	// ServerGreetingSize is NBDMAGIC | IHAVEOPT | u16 handshake flags.
	ServerGreetingSize = 18
	// OptionHeaderSize is IHAVEOPT | u32 option | u32 length.
	OptionHeaderSize = 16
	// OptionReplyHeaderSize is reply magic | u32 option | u32 type | u32 length.
	OptionReplyHeaderSize = 20
	// ExportNameReplySize is u64 size | u16 flags, sent after EXPORT_NAME,
	// followed by ExportNamePadSize zero bytes unless NO_ZEROES.
	ExportNameReplySize = 10
	ExportNamePadSize   = 124
)

// Errors shared by both sides of the handshake. OptionError values match
// them with errors.Is according to their reply type.
var (
	// ErrUnknownExport: the export does not exist (ERR_UNKNOWN, or the server
	// closed the connection after EXPORT_NAME).
	ErrUnknownExport = errors.New("unknown export")
	// ErrAborted: the client ended the handshake with NBD_OPT_ABORT.
	ErrAborted = errors.New("handshake aborted by client")
	// ErrShutdown: the server is shutting down (ERR_SHUTDOWN).
	ErrShutdown = errors.New("server shutting down")
	// ErrPolicy: the server's policy forbids the option (ERR_POLICY).
	ErrPolicy = errors.New("forbidden by server policy")
	// ErrUnsupported: the peer does not support the option (ERR_UNSUP).
	ErrUnsupported = errors.New("option not supported")
	// ErrTLSRequired: the server requires TLS first (ERR_TLS_REQD).
	ErrTLSRequired = errors.New("TLS required")
	// ErrInvalid: a message is malformed or not allowed in this state.
	ErrInvalid = errors.New("invalid message")
	// ErrTooLong: a length read from the wire exceeds its bound.
	ErrTooLong = errors.New("length exceeds bound")
	// ErrTooMany: a count read from the wire exceeds its bound.
	ErrTooMany = errors.New("count exceeds bound")
	// ErrNotFixedNewstyle: the server does not speak fixed newstyle and the
	// operation needs it.
	ErrNotFixedNewstyle = errors.New("server does not speak fixed newstyle")
	// ErrOldstyle: the server speaks the removed oldstyle handshake.
	ErrOldstyle = errors.New("oldstyle handshake not supported")
)

// OptionError is an error reply (reply type with bit 31 set) to an option.
type OptionError struct {
	Option  uint32
	Reply   uint32
	Message string
}

func (e *OptionError) Error() string {
	s := fmt.Sprintf("option %s: server replied %s", OptionName(e.Option), ReplyName(e.Reply))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is maps the reply type to the package's sentinel errors.
func (e *OptionError) Is(target error) bool {
	switch target {
	case ErrUnknownExport:
		return e.Reply == RepErrUnknown
	case ErrShutdown:
		return e.Reply == RepErrShutdown
	case ErrPolicy:
		return e.Reply == RepErrPolicy
	case ErrUnsupported:
		return e.Reply == RepErrUnsup
	case ErrTLSRequired:
		return e.Reply == RepErrTLSReqd
	case ErrInvalid:
		return e.Reply == RepErrInvalid
	}
	return false
}

// OptionHeader is a client's option request header; Length bytes of data
// follow it.
type OptionHeader struct {
	Option uint32
	Length uint32
}

// AppendOptionHeader appends the 16-byte option request header to b.
func AppendOptionHeader(b []byte, h OptionHeader) []byte {
	b = binary.BigEndian.AppendUint64(b, IHaveOpt)
	b = binary.BigEndian.AppendUint32(b, h.Option)
	b = binary.BigEndian.AppendUint32(b, h.Length)
	return b
}

// AppendOption appends an option request header and its data to b.
func AppendOption(b []byte, option uint32, data []byte) []byte {
	b = AppendOptionHeader(b, OptionHeader{Option: option, Length: uint32(len(data))})
	return append(b, data...)
}

// ParseOptionHeader decodes an option request header from b.
func ParseOptionHeader(b []byte) (OptionHeader, error) {
	if len(b) < OptionHeaderSize {
		return OptionHeader{}, fmt.Errorf("parse option header: %d bytes, need %d: %w", len(b), OptionHeaderSize, io.ErrUnexpectedEOF)
	}
	if m := binary.BigEndian.Uint64(b[0:8]); m != IHaveOpt {
		return OptionHeader{}, fmt.Errorf("parse option header: magic %#016x: %w", m, ErrBadMagic)
	}
	return OptionHeader{
		Option: binary.BigEndian.Uint32(b[8:12]),
		Length: binary.BigEndian.Uint32(b[12:16]),
	}, nil
}

// OptionReplyHeader is a server's option reply header; Length bytes of
// data follow it.
type OptionReplyHeader struct {
	Option uint32
	Type   uint32
	Length uint32
}

// AppendOptionReplyHeader appends the 20-byte option reply header to b.
func AppendOptionReplyHeader(b []byte, h OptionReplyHeader) []byte {
	b = binary.BigEndian.AppendUint64(b, OptReplyMagic)
	b = binary.BigEndian.AppendUint32(b, h.Option)
	b = binary.BigEndian.AppendUint32(b, h.Type)
	b = binary.BigEndian.AppendUint32(b, h.Length)
	return b
}

// AppendOptionReply appends an option reply header and its data to b.
func AppendOptionReply(b []byte, option, typ uint32, data []byte) []byte {
	b = AppendOptionReplyHeader(b, OptionReplyHeader{Option: option, Type: typ, Length: uint32(len(data))})
	return append(b, data...)
}

// ParseOptionReplyHeader decodes an option reply header from b.
func ParseOptionReplyHeader(b []byte) (OptionReplyHeader, error) {
	if len(b) < OptionReplyHeaderSize {
		return OptionReplyHeader{}, fmt.Errorf("parse option reply header: %d bytes, need %d: %w", len(b), OptionReplyHeaderSize, io.ErrUnexpectedEOF)
	}
	if m := binary.BigEndian.Uint64(b[0:8]); m != OptReplyMagic {
		return OptionReplyHeader{}, fmt.Errorf("parse option reply header: magic %#016x: %w", m, ErrBadMagic)
	}
	return OptionReplyHeader{
		Option: binary.BigEndian.Uint32(b[8:12]),
		Type:   binary.BigEndian.Uint32(b[12:16]),
		Length: binary.BigEndian.Uint32(b[16:20]),
	}, nil
}

// OptionName returns the spec's name of an option, for logs and errors.
func OptionName(o uint32) string {
	switch o {
	case OptExportName:
		return "EXPORT_NAME"
	case OptAbort:
		return "ABORT"
	case OptList:
		return "LIST"
	case OptPeekExport:
		return "PEEK_EXPORT"
	case OptStartTLS:
		return "STARTTLS"
	case OptInfo:
		return "INFO"
	case OptGo:
		return "GO"
	case OptStructuredReply:
		return "STRUCTURED_REPLY"
	case OptListMetaContext:
		return "LIST_META_CONTEXT"
	case OptSetMetaContext:
		return "SET_META_CONTEXT"
	case OptExtendedHeaders:
		return "EXTENDED_HEADERS"
	}
	return fmt.Sprintf("OPT(%d)", o)
}

// ReplyName returns the spec's name of an option reply type.
func ReplyName(r uint32) string {
	switch r {
	case RepAck:
		return "ACK"
	case RepServer:
		return "SERVER"
	case RepInfo:
		return "INFO"
	case RepMetaContext:
		return "META_CONTEXT"
	case RepErrUnsup:
		return "ERR_UNSUP"
	case RepErrPolicy:
		return "ERR_POLICY"
	case RepErrInvalid:
		return "ERR_INVALID"
	case RepErrPlatform:
		return "ERR_PLATFORM"
	case RepErrTLSReqd:
		return "ERR_TLS_REQD"
	case RepErrUnknown:
		return "ERR_UNKNOWN"
	case RepErrShutdown:
		return "ERR_SHUTDOWN"
	case RepErrBlockSizeReqd:
		return "ERR_BLOCK_SIZE_REQD"
	case RepErrTooBig:
		return "ERR_TOO_BIG"
	case RepErrExtHeaderReqd:
		return "ERR_EXT_HEADER_REQD"
	}
	return fmt.Sprintf("REP(%#x)", r)
}
