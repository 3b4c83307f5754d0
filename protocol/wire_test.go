package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// Byte vectors for every encoder and decoder, commented field by field.

func TestRequestWire(t *testing.T) {
	r := Request{Flags: CmdFlagFUA, Type: CmdWrite, Cookie: 0x0102030405060708, Offset: 0x1000, Length: 512}
	want := []byte{
		0x25, 0x60, 0x95, 0x13, // request magic
		0x00, 0x01, // flags: FUA
		0x00, 0x01, // type: WRITE
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // cookie
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, // offset
		0x00, 0x00, 0x02, 0x00, // length 512
	}
	if got := AppendRequest(nil, r); !bytes.Equal(got, want) {
		t.Errorf("AppendRequest\n% x\nwant\n% x", got, want)
	}
	if got, err := ParseRequest(want); err != nil || got != r {
		t.Errorf("ParseRequest = %+v, %v", got, err)
	}
	if _, err := ParseRequest(want[:27]); err == nil {
		t.Errorf("ParseRequest accepted 27 bytes")
	}
	old := append([]byte{0x12, 0x56, 0x09, 0x53}, want[4:]...) // the 1997 magic
	if _, err := ParseRequest(old); !errors.Is(err, ErrBadMagic) {
		t.Errorf("ParseRequest of the 1997 magic: %v", err)
	}
}

func TestReplyHeaderWire(t *testing.T) {
	simple := []byte{
		0x67, 0x44, 0x66, 0x98, // simple reply magic
		0x00, 0x00, 0x00, 0x16, // error EINVAL
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, // cookie
	}
	if got := AppendSimpleReply(nil, EINVAL, 9); !bytes.Equal(got, simple) {
		t.Errorf("AppendSimpleReply\n% x\nwant\n% x", got, simple)
	}
	c := Chunk{Flags: ChunkFlagDone, Type: ChunkBlockStatus, Cookie: 9, Length: 12}
	structured := []byte{
		0x66, 0x8e, 0x33, 0xef, // structured reply magic
		0x00, 0x01, // flags: DONE
		0x00, 0x05, // type: BLOCK_STATUS
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, // cookie
		0x00, 0x00, 0x00, 0x0c, // payload length 12
	}
	if got := AppendChunk(nil, c); !bytes.Equal(got, structured) {
		t.Errorf("AppendChunk\n% x\nwant\n% x", got, structured)
	}
	buf := make([]byte, ChunkHeaderSize)
	for _, tt := range []struct {
		in   []byte
		want ReplyHeader
		err  bool
	}{
		{simple, ReplyHeader{Errno: EINVAL, Cookie: 9}, false},
		{structured, ReplyHeader{Structured: true, Cookie: 9, Chunk: c}, false},
		{simple[:10], ReplyHeader{}, true},
		{structured[:19], ReplyHeader{}, true},
		{[]byte{0x96, 0x74, 0x46, 0x68, 0, 0, 0, 0}, ReplyHeader{}, true}, // 1997 reply magic
	} {
		got, err := ReadReplyHeader(bytes.NewReader(tt.in), buf)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ReadReplyHeader(% x) = %+v, %v", tt.in, got, err)
		}
	}
}

func TestOptionHeaderWire(t *testing.T) {
	opt := []byte{
		0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, // IHAVEOPT
		0x00, 0x00, 0x00, 0x07, // option GO
		0x00, 0x00, 0x00, 0x06, // length 6
	}
	h := OptionHeader{Option: OptGo, Length: 6}
	if got := AppendOptionHeader(nil, h); !bytes.Equal(got, opt) {
		t.Errorf("AppendOptionHeader\n% x\nwant\n% x", got, opt)
	}
	if got, err := ParseOptionHeader(opt); err != nil || got != h {
		t.Errorf("ParseOptionHeader = %+v, %v", got, err)
	}
	if _, err := ParseOptionHeader(opt[:15]); err == nil {
		t.Errorf("ParseOptionHeader accepted 15 bytes")
	}
	rep := []byte{
		0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9, // option reply magic
		0x00, 0x00, 0x00, 0x07, // option GO
		0x80, 0x00, 0x00, 0x06, // reply ERR_UNKNOWN
		0x00, 0x00, 0x00, 0x02, // length 2
		'n', 'o', // message
	}
	if got := AppendOptionReply(nil, OptGo, RepErrUnknown, []byte("no")); !bytes.Equal(got, rep) {
		t.Errorf("AppendOptionReply\n% x\nwant\n% x", got, rep)
	}
	if got, err := ParseOptionReplyHeader(rep); err != nil || got != (OptionReplyHeader{OptGo, RepErrUnknown, 2}) {
		t.Errorf("ParseOptionReplyHeader = %+v, %v", got, err)
	}
	if _, err := ParseOptionReplyHeader(opt[:]); err == nil {
		t.Errorf("ParseOptionReplyHeader accepted an option request")
	}
}

func TestInfoRequestWire(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want InfoRequest
		err  error
	}{{
		name: "name and two infos",
		in: []byte{
			0x00, 0x00, 0x00, 0x04, // name length 4
			'r', 'o', 'o', 't', // name
			0x00, 0x02, // 2 info requests
			0x00, 0x03, // BLOCK_SIZE
			0x00, 0x01, // NAME
		},
		want: InfoRequest{Name: "root", Infos: []uint16{InfoBlockSize, InfoName}},
	}, {
		name: "default export, no infos",
		in: []byte{
			0x00, 0x00, 0x00, 0x00, // name length 0
			0x00, 0x00, // 0 info requests
		},
		want: InfoRequest{},
	}, {
		name: "too short",
		in:   []byte{0x00, 0x00, 0x00, 0x00, 0x00},
		err:  ErrInvalid,
	}, {
		name: "name past the end",
		in: []byte{
			0x00, 0x00, 0x00, 0x05, // name length 5
			'r', 'o', 'o', 't', // only 4
			0x00, 0x00,
		},
		err: ErrInvalid,
	}, {
		name: "name too long",
		in:   []byte{0x00, 0x00, 0x10, 0x01, 0, 0}, // name length 4097
		err:  ErrTooLong,
	}, {
		name: "huge name length",
		in:   []byte{0xff, 0xff, 0xff, 0xff, 0, 0}, // name length 2^32-1
		err:  ErrTooLong,
	}, {
		name: "count larger than data",
		in: []byte{
			0x00, 0x00, 0x00, 0x00, // name length 0
			0x00, 0x02, // 2 info requests
			0x00, 0x03, // only one
		},
		err: ErrInvalid,
	}, {
		name: "count above MaxInfoRequests",
		in:   []byte{0, 0, 0, 0, 0xff, 0xff}, // 65535 info requests
		err:  ErrTooMany,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInfoRequest(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseInfoRequest error %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseInfoRequest = %+v, %v", got, err)
			}
			if enc := AppendInfoRequest(nil, got); !bytes.Equal(enc, tt.in) {
				t.Errorf("AppendInfoRequest\n% x\nwant\n% x", enc, tt.in)
			}
		})
	}
}

func TestInfoWire(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Info
		err  error
	}{{
		name: "EXPORT",
		in: []byte{
			0x00, 0x00, // NBD_INFO_EXPORT
			0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // size 4 GiB
			0x01, 0x0d, // flags HAS_FLAGS|SEND_FLUSH|SEND_FUA|CAN_MULTI_CONN
		},
		want: Info{Type: InfoExport, Size: 1 << 32, Flags: FlagHasFlags | FlagSendFlush | FlagSendFUA | FlagCanMultiConn},
	}, {
		name: "NAME",
		in:   []byte{0x00, 0x01, 'r', 'o', 'o', 't'}, // NBD_INFO_NAME | name
		want: Info{Type: InfoName, Text: "root"},
	}, {
		name: "DESCRIPTION",
		in:   []byte{0x00, 0x02, 'h', 'i'}, // NBD_INFO_DESCRIPTION | text
		want: Info{Type: InfoDescription, Text: "hi"},
	}, {
		name: "BLOCK_SIZE",
		in: []byte{
			0x00, 0x03, // NBD_INFO_BLOCK_SIZE
			0x00, 0x00, 0x02, 0x00, // minimum 512
			0x00, 0x00, 0x10, 0x00, // preferred 4096
			0x02, 0x00, 0x00, 0x00, // maximum 32 MiB
		},
		want: Info{Type: InfoBlockSize, MinBlock: 512, PrefBlock: 4096, MaxBlock: 32 << 20},
	}, {
		name: "unknown type is ignored",
		in:   []byte{0x00, 0x63, 1, 2, 3}, // type 99 | whatever
		want: Info{Type: 99},
	}, {
		name: "EXPORT too short",
		in:   []byte{0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		err:  ErrInvalid,
	}, {
		name: "BLOCK_SIZE too long",
		in:   make([]byte, 2+12+1),
		err:  ErrInvalid,
	}, {
		name: "no type",
		in:   []byte{0x00},
		err:  ErrInvalid,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "BLOCK_SIZE too long" {
				tt.in[1] = 3
			}
			got, err := ParseInfo(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseInfo error %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseInfo = %+v, %v", got, err)
			}
			if got.Type > InfoBlockSize {
				return // unknown types do not round trip
			}
			if enc := AppendInfo(nil, got); !bytes.Equal(enc, tt.in) {
				t.Errorf("AppendInfo\n% x\nwant\n% x", enc, tt.in)
			}
		})
	}
}

func TestServerReplyWire(t *testing.T) {
	in := []byte{
		0x00, 0x00, 0x00, 0x04, // name length 4
		'r', 'o', 'o', 't', // name
		'b', 'o', 'o', 't', // description: the rest
	}
	if got := AppendServerReply(nil, "root", "boot"); !bytes.Equal(got, in) {
		t.Errorf("AppendServerReply\n% x\nwant\n% x", got, in)
	}
	if n, d, err := ParseServerReply(in); n != "root" || d != "boot" || err != nil {
		t.Errorf("ParseServerReply = %q, %q, %v", n, d, err)
	}
	for _, bad := range [][]byte{
		{0x00, 0x00, 0x00},                                          // no room for the length
		{0x00, 0x00, 0x00, 0x05, 'r', 'o'},                          // name past the end
		{0xff, 0xff, 0xff, 0xff, 'r', 'o'},                          // huge name length
		append([]byte{0, 0, 0, 0}, make([]byte, MaxStringLen+1)...), // description too long
	} {
		if _, _, err := ParseServerReply(bad); err == nil {
			t.Errorf("ParseServerReply(% .20x) accepted", bad)
		}
	}
}

func TestMetaContextWire(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want MetaContextRequest
		err  error
	}{{
		name: "two queries",
		in: []byte{
			0x00, 0x00, 0x00, 0x01, // export name length 1
			'x',                    // export name
			0x00, 0x00, 0x00, 0x02, // 2 queries
			0x00, 0x00, 0x00, 0x05, // query length 5
			'b', 'a', 's', 'e', ':', // "base:"
			0x00, 0x00, 0x00, 0x02, // query length 2
			'q', ':', // "q:"
		},
		want: MetaContextRequest{Export: "x", Queries: []string{"base:", "q:"}},
	}, {
		name: "no queries",
		in: []byte{
			0x00, 0x00, 0x00, 0x00, // export name length 0
			0x00, 0x00, 0x00, 0x00, // 0 queries
		},
		want: MetaContextRequest{},
	}, {
		name: "missing count",
		in:   []byte{0x00, 0x00, 0x00, 0x00},
		err:  ErrInvalid,
	}, {
		name: "count above bound",
		in:   []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, // 2^32-1 queries
		err:  ErrTooMany,
	}, {
		name: "count larger than data",
		in:   []byte{0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0}, // 2 queries, one empty present
		err:  ErrInvalid,
	}, {
		name: "query too long",
		in:   []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x10, 0x01}, // query length 4097
		err:  ErrTooLong,
	}, {
		name: "trailing bytes",
		in:   []byte{0, 0, 0, 0, 0, 0, 0, 0, 0xaa},
		err:  ErrInvalid,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMetaContextRequest(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseMetaContextRequest error %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseMetaContextRequest = %+v, %v", got, err)
			}
			if enc := AppendMetaContextRequest(nil, got); !bytes.Equal(enc, tt.in) {
				t.Errorf("AppendMetaContextRequest\n% x\nwant\n% x", enc, tt.in)
			}
		})
	}

	rep := []byte{
		0x00, 0x00, 0x00, 0x01, // context id 1
		'b', 'a', 's', 'e', ':', 'a', 'l', 'l', 'o', 'c', 'a', 't', 'i', 'o', 'n', // name
	}
	mc := MetaContext{ID: 1, Name: MetaContextBaseAllocation}
	if got := AppendMetaContextReply(nil, mc); !bytes.Equal(got, rep) {
		t.Errorf("AppendMetaContextReply\n% x\nwant\n% x", got, rep)
	}
	if got, err := ParseMetaContextReply(rep); err != nil || got != mc {
		t.Errorf("ParseMetaContextReply = %+v, %v", got, err)
	}
	if _, err := ParseMetaContextReply(rep[:3]); err == nil {
		t.Errorf("ParseMetaContextReply accepted 3 bytes")
	}
}

// offsetData is an OFFSET_DATA payload: u64 offset, then data.
func offsetData(offset uint64, data []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, offset), data...)
}

func TestChunkPayloadWire(t *testing.T) {
	hole := []byte{
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, // offset 4096
		0x00, 0x00, 0x02, 0x00, // length 512
	}
	if got := AppendOffsetHole(nil, 4096, 512); !bytes.Equal(got, hole) {
		t.Errorf("AppendOffsetHole\n% x\nwant\n% x", got, hole)
	}
	if off, n, err := ParseOffsetHole(hole); off != 4096 || n != 512 || err != nil {
		t.Errorf("ParseOffsetHole = %d, %d, %v", off, n, err)
	}
	if _, _, err := ParseOffsetHole(make([]byte, 12)); err == nil {
		t.Errorf("ParseOffsetHole accepted a zero length")
	}
	if _, _, err := ParseOffsetHole(hole[:11]); err == nil {
		t.Errorf("ParseOffsetHole accepted 11 bytes")
	}

	bs := []byte{
		0x00, 0x00, 0x00, 0x01, // context id 1
		0x00, 0x00, 0x10, 0x00, // extent length 4096
		0x00, 0x00, 0x00, 0x00, // flags: allocated
		0x00, 0x01, 0x00, 0x00, // extent length 65536
		0x00, 0x00, 0x00, 0x03, // flags: HOLE|ZERO
	}
	ext := []Extent{{4096, 0}, {65536, StateHole | StateZero}}
	if got := AppendBlockStatus(nil, 1, ext); !bytes.Equal(got, bs) {
		t.Errorf("AppendBlockStatus\n% x\nwant\n% x", got, bs)
	}
	if id, got, err := ParseBlockStatus(bs, nil); id != 1 || !reflect.DeepEqual(got, ext) || err != nil {
		t.Errorf("ParseBlockStatus = %d, %v, %v", id, got, err)
	}
	for _, bad := range [][]byte{
		bs[:4],                               // no descriptor
		bs[:15],                              // partial descriptor
		{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, // zero-length extent
	} {
		if _, _, err := ParseBlockStatus(bad, nil); err == nil {
			t.Errorf("ParseBlockStatus(% x) accepted", bad)
		}
	}

	errc := []byte{
		0x00, 0x00, 0x00, 0x05, // error EIO
		0x00, 0x03, // message length 3
		'b', 'a', 'd', // message
	}
	if got := AppendChunkError(nil, ChunkErr{Errno: EIO, Message: "bad"}); !bytes.Equal(got, errc) {
		t.Errorf("AppendChunkError\n% x\nwant\n% x", got, errc)
	}
	if got, err := ParseChunkError(ChunkError, errc); err != nil || got != (ChunkErr{Errno: EIO, Message: "bad"}) {
		t.Errorf("ParseChunkError = %+v, %v", got, err)
	}
	erro := append(append([]byte{}, errc...),
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, // offset 512
	)
	withOff := ChunkErr{Errno: EIO, Message: "bad", Offset: 512, HasOffset: true}
	if got := AppendChunkError(nil, withOff); !bytes.Equal(got, erro) {
		t.Errorf("AppendChunkError with offset\n% x\nwant\n% x", got, erro)
	}
	if got, err := ParseChunkError(ChunkErrorOffset, erro); err != nil || got != withOff {
		t.Errorf("ParseChunkError offset = %+v, %v", got, err)
	}
	for _, bad := range []struct {
		typ uint16
		b   []byte
	}{
		{ChunkError, errc[:5]},                       // no message length
		{ChunkError, errc[:8]},                       // message past the end
		{ChunkError, erro},                           // trailing bytes
		{ChunkErrorOffset, errc},                     // missing offset
		{ChunkOffsetData, errc},                      // not an error type
		{ChunkError, []byte{0, 0, 0, 5, 0x10, 0x01}}, // message longer than 4096
	} {
		if _, err := ParseChunkError(bad.typ, bad.b); err == nil {
			t.Errorf("ParseChunkError(%d, % x) accepted", bad.typ, bad.b)
		}
	}
	// Unknown error types keep the common fields and skip the rest.
	if got, err := ParseChunkError(0x8000|99, erro); err != nil || got != (ChunkErr{Errno: EIO, Message: "bad"}) {
		t.Errorf("ParseChunkError unknown type = %+v, %v", got, err)
	}
}

func TestOptionErrorIs(t *testing.T) {
	for rep, sentinel := range map[uint32]error{
		RepErrUnknown: ErrUnknownExport, RepErrShutdown: ErrShutdown, RepErrPolicy: ErrPolicy,
		RepErrUnsup: ErrUnsupported, RepErrTLSReqd: ErrTLSRequired, RepErrInvalid: ErrInvalid,
	} {
		err := error(&OptionError{Option: OptGo, Reply: rep, Message: "m"})
		if !errors.Is(err, sentinel) {
			t.Errorf("%v does not match %v", err, sentinel)
		}
		if errors.Is(err, ErrAborted) {
			t.Errorf("%v matches ErrAborted", err)
		}
	}
	if got := (&OptionError{Option: OptGo, Reply: RepErrUnknown, Message: "no such export"}).Error(); got != "option GO: server replied ERR_UNKNOWN: no such export" {
		t.Errorf("OptionError.Error() = %q", got)
	}
}
