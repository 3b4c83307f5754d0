package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"testing"
	"time"
)

// fakeProvider serves a fixed set of exports.
type fakeProvider map[string]ExportInfo

func (p fakeProvider) Export(name string) (ExportInfo, error) {
	switch name {
	case "shutdown":
		return ExportInfo{}, fmt.Errorf("export %q: %w", name, ErrShutdown)
	case "broken":
		return ExportInfo{}, errors.New("backing file unreadable")
	}
	e, ok := p[name]
	if !ok {
		return ExportInfo{}, fmt.Errorf("export %q: %w", name, ErrUnknownExport)
	}
	return e, nil
}

func (p fakeProvider) Exports() []ExportInfo {
	return []ExportInfo{p["root"], p[""]}
}

var testExports = fakeProvider{
	"root": {Name: "root", Description: "the root fs", Size: 1 << 30, Flags: FlagSendFlush | FlagSendFUA | FlagSendDF, MinBlock: 512, PrefBlock: 4096, MaxBlock: 1 << 20},
	"":     {Name: "", Size: 4096, Flags: FlagReadOnly},
}

// pipe returns two connected ends with a deadline so a broken test fails
// instead of hanging.
func pipe(t *testing.T) (client, server net.Conn) {
	t.Helper()
	c, s := net.Pipe()
	dl := time.Now().Add(10 * time.Second)
	c.SetDeadline(dl)
	s.SetDeadline(dl)
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

type serverResult struct {
	sess *Session
	err  error
}

// startServer runs ServerHandshake on one end of a pipe and closes it when
// the handshake fails, as a real server would.
func startServer(t *testing.T, opts ServerOptions) (net.Conn, <-chan serverResult) {
	t.Helper()
	c, s := pipe(t)
	ch := make(chan serverResult, 1)
	go func() {
		sess, err := ServerHandshake(s, testExports, opts)
		if err != nil {
			s.Close()
		}
		ch <- serverResult{sess, err}
	}()
	return c, ch
}

func TestHandshakeGo(t *testing.T) {
	tests := []struct {
		name     string
		opts     ClientOptions
		want     Negotiated
		wantSess Session
	}{{
		name: "structured with base:allocation",
		opts: ClientOptions{Export: "root", Structured: true, MetaContexts: []string{MetaContextBaseAllocation, "qemu:dirty-bitmap:x"}},
		want: Negotiated{
			ExportInfo:   ExportInfo{Name: "root", Description: "the root fs", Size: 1 << 30, Flags: FlagHasFlags | FlagSendFlush | FlagSendFUA | FlagSendDF, MinBlock: 512, PrefBlock: 4096, MaxBlock: 1 << 20},
			Structured:   true,
			MetaContexts: map[string]uint32{MetaContextBaseAllocation: MetaContextBaseAllocationID},
			NoZeroes:     true,
		},
		wantSess: Session{
			Export:       ExportInfo{Name: "root", Description: "the root fs", Size: 1 << 30, Flags: FlagHasFlags | FlagSendFlush | FlagSendFUA | FlagSendDF, MinBlock: 512, PrefBlock: 4096, MaxBlock: 1 << 20},
			Structured:   true,
			MetaContexts: []MetaContext{{MetaContextBaseAllocationID, MetaContextBaseAllocation}},
			NoZeroes:     true,
			ClientFlags:  ClientFlagFixedNewstyle | ClientFlagNoZeroes,
		},
	}, {
		name: "simple replies, default export, DF cleared, default block sizes",
		opts: ClientOptions{Export: ""},
		want: Negotiated{
			ExportInfo: ExportInfo{Size: 4096, Flags: FlagHasFlags | FlagReadOnly, MinBlock: 1, PrefBlock: 4096, MaxBlock: MaxPayload},
			NoZeroes:   true,
		},
		wantSess: Session{
			Export:      ExportInfo{Size: 4096, Flags: FlagHasFlags | FlagReadOnly},
			NoZeroes:    true,
			ClientFlags: ClientFlagFixedNewstyle | ClientFlagNoZeroes,
		},
	}, {
		name: "root without structured loses DF",
		opts: ClientOptions{Export: "root", MetaContexts: []string{MetaContextBaseAllocation}},
		want: Negotiated{
			ExportInfo: ExportInfo{Name: "root", Description: "the root fs", Size: 1 << 30, Flags: FlagHasFlags | FlagSendFlush | FlagSendFUA, MinBlock: 512, PrefBlock: 4096, MaxBlock: 1 << 20},
			NoZeroes:   true,
		},
		wantSess: Session{
			Export:      ExportInfo{Name: "root", Description: "the root fs", Size: 1 << 30, Flags: FlagHasFlags | FlagSendFlush | FlagSendFUA, MinBlock: 512, PrefBlock: 4096, MaxBlock: 1 << 20},
			NoZeroes:    true,
			ClientFlags: ClientFlagFixedNewstyle | ClientFlagNoZeroes,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ch := startServer(t, ServerOptions{})
			got, err := ClientHandshake(c, tt.opts)
			if err != nil {
				t.Fatalf("ClientHandshake: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ClientHandshake = %+v\nwant %+v", got, tt.want)
			}
			r := <-ch
			if r.err != nil {
				t.Fatalf("ServerHandshake: %v", r.err)
			}
			r.sess.Conn = nil
			if !reflect.DeepEqual(*r.sess, tt.wantSess) {
				t.Errorf("Session = %+v\nwant %+v", *r.sess, tt.wantSess)
			}
		})
	}
}

func TestHandshakeErrors(t *testing.T) {
	for _, tt := range []struct {
		export string
		want   error
		reply  uint32
	}{
		{"nope", ErrUnknownExport, RepErrUnknown},
		{"shutdown", ErrShutdown, RepErrShutdown},
		{"broken", nil, RepErrPlatform},
	} {
		t.Run(tt.export, func(t *testing.T) {
			c, ch := startServer(t, ServerOptions{})
			_, err := ClientHandshake(c, ClientOptions{Export: tt.export})
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Reply != tt.reply || oe.Option != OptGo {
				t.Fatalf("ClientHandshake error = %v, want OptionError %s to GO", err, ReplyName(tt.reply))
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v does not wrap %v", err, tt.want)
			}
			c.Close()
			if r := <-ch; r.err == nil {
				t.Errorf("server handshake succeeded after client closed")
			}
		})
	}
}

func TestClientInfoAndList(t *testing.T) {
	c, ch := startServer(t, ServerOptions{})
	info, err := ClientInfo(c, "root")
	if err != nil {
		t.Fatalf("ClientInfo: %v", err)
	}
	want := ExportInfo{Name: "root", Description: "the root fs", Size: 1 << 30, Flags: FlagHasFlags | FlagSendFlush | FlagSendFUA, MinBlock: 512, PrefBlock: 4096, MaxBlock: 1 << 20}
	if info != want {
		t.Errorf("ClientInfo = %+v, want %+v", info, want)
	}
	if r := <-ch; !errors.Is(r.err, ErrAborted) {
		t.Errorf("server after INFO+ABORT: %v, want ErrAborted", r.err)
	}

	c, ch = startServer(t, ServerOptions{})
	list, err := ClientList(c)
	if err != nil {
		t.Fatalf("ClientList: %v", err)
	}
	wantList := []ExportInfo{{Name: "root", Description: "the root fs"}, {}}
	if !reflect.DeepEqual(list, wantList) {
		t.Errorf("ClientList = %+v, want %+v", list, wantList)
	}
	if r := <-ch; !errors.Is(r.err, ErrAborted) {
		t.Errorf("server after LIST+ABORT: %v, want ErrAborted", r.err)
	}
}

// fakeOldServer speaks fixed newstyle but answers every option but
// EXPORT_NAME with ERR_UNSUP, like nbd-server before 3.x's GO.
func fakeOldServer(rw io.ReadWriter, handshakeFlags uint16, size uint64, flags uint16) error {
	b := binary.BigEndian.AppendUint64(nil, NBDMagic)
	b = binary.BigEndian.AppendUint64(b, IHaveOpt)
	b = binary.BigEndian.AppendUint16(b, handshakeFlags)
	if _, err := rw.Write(b); err != nil {
		return err
	}
	var cf [4]byte
	if _, err := io.ReadFull(rw, cf[:]); err != nil {
		return err
	}
	for {
		var hb [OptionHeaderSize]byte
		if _, err := io.ReadFull(rw, hb[:]); err != nil {
			return err
		}
		h, err := ParseOptionHeader(hb[:])
		if err != nil {
			return err
		}
		data := make([]byte, h.Length)
		if _, err := io.ReadFull(rw, data); err != nil {
			return err
		}
		if h.Option != OptExportName {
			if _, err := rw.Write(AppendOptionReply(nil, h.Option, RepErrUnsup, nil)); err != nil {
				return err
			}
			continue
		}
		if string(data) != "root" {
			return fmt.Errorf("export %q", data)
		}
		b := binary.BigEndian.AppendUint64(nil, size)
		b = binary.BigEndian.AppendUint16(b, flags)
		if binary.BigEndian.Uint32(cf[:])&ClientFlagNoZeroes == 0 {
			b = append(b, make([]byte, ExportNamePadSize)...)
		}
		_, err = rw.Write(b)
		return err
	}
}

func TestClientFallbackToExportName(t *testing.T) {
	for _, tt := range []struct {
		name     string
		hsFlags  uint16
		noZeroes bool
	}{
		{"fixed newstyle with NO_ZEROES", FlagFixedNewstyle | FlagNoZeroes, true},
		{"fixed newstyle with zeroes", FlagFixedNewstyle, false},
		{"plain newstyle", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, s := pipe(t)
			errc := make(chan error, 1)
			go func() { errc <- fakeOldServer(s, tt.hsFlags, 1<<20, FlagHasFlags|FlagSendFlush) }()
			n, err := ClientHandshake(c, ClientOptions{Export: "root", Structured: true, MetaContexts: []string{MetaContextBaseAllocation}})
			if err != nil {
				t.Fatalf("ClientHandshake: %v", err)
			}
			want := Negotiated{
				ExportInfo:     ExportInfo{Name: "root", Size: 1 << 20, Flags: FlagHasFlags | FlagSendFlush},
				NoZeroes:       tt.noZeroes,
				UsedExportName: true,
			}
			if tt.hsFlags&FlagFixedNewstyle != 0 {
				want.MetaContexts = nil // structured refused, so never asked
			}
			if !reflect.DeepEqual(n, want) {
				t.Errorf("ClientHandshake = %+v\nwant %+v", n, want)
			}
			if err := <-errc; err != nil {
				t.Errorf("fake server: %v", err)
			}
		})
	}
}

// rawClient drives a server with hand-made bytes.
type rawClient struct {
	t *testing.T
	c net.Conn
}

func (r rawClient) greet(flags uint32) {
	r.t.Helper()
	var b [ServerGreetingSize]byte
	if _, err := io.ReadFull(r.c, b[:]); err != nil {
		r.t.Fatalf("read greeting: %v", err)
	}
	want := []byte{
		0x4e, 0x42, 0x44, 0x4d, 0x41, 0x47, 0x49, 0x43, // NBDMAGIC
		0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, // IHAVEOPT
		0x00, 0x03, // FIXED_NEWSTYLE | NO_ZEROES
	}
	if !bytes.Equal(b[:], want) {
		r.t.Fatalf("greeting % x, want % x", b, want)
	}
	if _, err := r.c.Write(binary.BigEndian.AppendUint32(nil, flags)); err != nil {
		r.t.Fatalf("send client flags: %v", err)
	}
}

func (r rawClient) send(option uint32, data []byte) {
	r.t.Helper()
	if _, err := r.c.Write(AppendOption(nil, option, data)); err != nil {
		r.t.Fatalf("send %s: %v", OptionName(option), err)
	}
}

func (r rawClient) expect(option, typ uint32) []byte {
	r.t.Helper()
	var hb [OptionReplyHeaderSize]byte
	if _, err := io.ReadFull(r.c, hb[:]); err != nil {
		r.t.Fatalf("read reply to %s: %v", OptionName(option), err)
	}
	h, err := ParseOptionReplyHeader(hb[:])
	if err != nil {
		r.t.Fatalf("reply to %s: %v", OptionName(option), err)
	}
	data := make([]byte, h.Length)
	if _, err := io.ReadFull(r.c, data); err != nil {
		r.t.Fatalf("read reply data: %v", err)
	}
	if h.Option != option || h.Type != typ {
		r.t.Fatalf("reply %s to %s (%q), want %s to %s", ReplyName(h.Type), OptionName(h.Option), data, ReplyName(typ), OptionName(option))
	}
	return data
}

func (r rawClient) expectClosed() {
	r.t.Helper()
	var b [1]byte
	if n, err := r.c.Read(b[:]); err == nil {
		r.t.Fatalf("read %d bytes, want the server to close", n)
	}
}

func infoReq(name string, infos ...uint16) []byte {
	return AppendInfoRequest(nil, InfoRequest{Name: name, Infos: infos})
}

func metaReq(export string, q ...string) []byte {
	return AppendMetaContextRequest(nil, MetaContextRequest{Export: export, Queries: q})
}

func TestServerOptionRules(t *testing.T) {
	fixed := ClientFlagFixedNewstyle
	tests := []struct {
		name    string
		opts    ServerOptions
		script  func(r rawClient)
		wantErr error // from ServerHandshake; nil: a Session
	}{{
		name: "unknown option data is read then ERR_UNSUP",
		script: func(r rawClient) {
			r.send(99, bytes.Repeat([]byte{0xaa}, 1000))
			r.expect(99, RepErrUnsup)
			r.send(OptExtendedHeaders, nil)
			r.expect(OptExtendedHeaders, RepErrUnsup)
			r.send(OptPeekExport, nil)
			r.expect(OptPeekExport, RepErrUnsup)
			r.send(OptAbort, nil)
			r.expect(OptAbort, RepAck)
		},
		wantErr: ErrAborted,
	}, {
		name: "options with forbidden data get ERR_INVALID",
		script: func(r rawClient) {
			r.send(OptList, []byte{1})
			r.expect(OptList, RepErrInvalid)
			r.send(OptStructuredReply, []byte{1, 2})
			r.expect(OptStructuredReply, RepErrInvalid)
			r.send(OptStartTLS, []byte{1})
			r.expect(OptStartTLS, RepErrInvalid)
			r.send(OptAbort, []byte("ignored")) // the spec says ignore ABORT data
			r.expect(OptAbort, RepAck)
		},
		wantErr: ErrAborted,
	}, {
		name: "STARTTLS without TLS configured",
		script: func(r rawClient) {
			r.send(OptStartTLS, nil)
			r.expect(OptStartTLS, RepErrUnsup)
			r.send(OptAbort, nil)
			r.expect(OptAbort, RepAck)
		},
		wantErr: ErrAborted,
	}, {
		name: "malformed INFO requests",
		script: func(r rawClient) {
			r.send(OptInfo, nil) // too short
			r.expect(OptInfo, RepErrInvalid)
			r.send(OptInfo, []byte{0, 0, 0, 9, 'r', 0, 0}) // name longer than data
			r.expect(OptInfo, RepErrInvalid)
			r.send(OptGo, append(infoReq("root", 1), 0)) // trailing byte
			r.expect(OptGo, RepErrInvalid)
			long := make([]byte, 4+MaxStringLen+1+2)
			binary.BigEndian.PutUint32(long, MaxStringLen+1)
			r.send(OptGo, long) // name > 4096
			r.expect(OptGo, RepErrInvalid)
			r.send(OptGo, infoReq("nope"))
			r.expect(OptGo, RepErrUnknown)
			r.send(OptAbort, nil)
			r.expect(OptAbort, RepAck)
		},
		wantErr: ErrAborted,
	}, {
		name: "INFO then GO with only EXPORT",
		script: func(r rawClient) {
			r.send(OptInfo, infoReq("", InfoName, 77))
			// u16 type | u64 size | u16 flags
			if d := r.expect(OptInfo, RepInfo); !bytes.Equal(d, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 3}) {
				t.Errorf("INFO_EXPORT % x", d)
			}
			if d := r.expect(OptInfo, RepInfo); !bytes.Equal(d, []byte{0, 1}) { // NAME ""
				t.Errorf("INFO_NAME % x", d)
			}
			r.expect(OptInfo, RepAck)
			r.send(OptGo, infoReq(""))
			r.expect(OptGo, RepInfo)
			r.expect(OptGo, RepAck)
		},
	}, {
		name: "structured reply twice, meta contexts",
		script: func(r rawClient) {
			r.send(OptSetMetaContext, metaReq("root", MetaContextBaseAllocation))
			r.expect(OptSetMetaContext, RepErrInvalid) // before STRUCTURED_REPLY
			r.send(OptListMetaContext, metaReq("root"))
			r.expect(OptListMetaContext, RepErrInvalid)
			r.send(OptStructuredReply, nil)
			r.expect(OptStructuredReply, RepAck)
			r.send(OptStructuredReply, nil)
			r.expect(OptStructuredReply, RepErrInvalid)
			// LIST with no query: everything, ID zero.
			r.send(OptListMetaContext, metaReq("root"))
			if d := r.expect(OptListMetaContext, RepMetaContext); !bytes.Equal(d, append([]byte{0, 0, 0, 0}, MetaContextBaseAllocation...)) {
				t.Errorf("LIST_META_CONTEXT reply % x", d)
			}
			r.expect(OptListMetaContext, RepAck)
			// LIST "base:" is a wildcard.
			r.send(OptListMetaContext, metaReq("root", "base:"))
			r.expect(OptListMetaContext, RepMetaContext)
			r.expect(OptListMetaContext, RepAck)
			// Unknown namespaces are ignored.
			r.send(OptListMetaContext, metaReq("root", "qemu:dirty-bitmap:a"))
			r.expect(OptListMetaContext, RepAck)
			// No colon: invalid.
			r.send(OptListMetaContext, metaReq("root", "allocation"))
			r.expect(OptListMetaContext, RepErrInvalid)
			r.send(OptListMetaContext, metaReq("nope"))
			r.expect(OptListMetaContext, RepErrUnknown)
			// Too many queries.
			many := make([]string, MaxMetaQueries+1)
			for i := range many {
				many[i] = "base:"
			}
			r.send(OptSetMetaContext, metaReq("root", many...))
			r.expect(OptSetMetaContext, RepErrTooBig)
			// SET "base:" selects nothing.
			r.send(OptSetMetaContext, metaReq("root", "base:"))
			r.expect(OptSetMetaContext, RepAck)
			r.send(OptSetMetaContext, metaReq("root", MetaContextBaseAllocation, MetaContextBaseAllocation))
			if d := r.expect(OptSetMetaContext, RepMetaContext); !bytes.Equal(d, append([]byte{0, 0, 0, 1}, MetaContextBaseAllocation...)) {
				t.Errorf("SET_META_CONTEXT reply % x", d)
			}
			r.expect(OptSetMetaContext, RepAck)
			r.send(OptGo, infoReq("root"))
			r.expect(OptGo, RepInfo) // EXPORT
			r.expect(OptGo, RepInfo) // BLOCK_SIZE: the export has one
			r.expect(OptGo, RepAck)
		},
	}, {
		name: "TLS required",
		opts: ServerOptions{TLSRequired: true},
		script: func(r rawClient) {
			r.send(OptList, nil)
			r.expect(OptList, RepErrTLSReqd)
			r.send(OptGo, infoReq("root"))
			r.expect(OptGo, RepErrTLSReqd)
			r.send(OptExportName, []byte("root"))
			r.expectClosed()
		},
		wantErr: ErrTLSRequired,
	}, {
		name: "EXPORT_NAME unknown closes",
		script: func(r rawClient) {
			r.send(OptExportName, []byte("nope"))
			r.expectClosed()
		},
		wantErr: ErrUnknownExport,
	}, {
		name: "EXPORT_NAME name too long closes",
		script: func(r rawClient) {
			r.send(OptExportName, make([]byte, MaxStringLen+1))
			r.expectClosed()
		},
		wantErr: ErrTooLong,
	}, {
		name: "option longer than MaxOptionLen closes before reading it",
		script: func(r rawClient) {
			r.c.Write(AppendOptionHeader(nil, OptionHeader{Option: OptGo, Length: MaxOptionLen + 1}))
			r.expectClosed()
		},
		wantErr: ErrTooLong,
	}, {
		name: "bad option magic closes",
		script: func(r rawClient) {
			r.c.Write(make([]byte, OptionHeaderSize))
			r.expectClosed()
		},
		wantErr: ErrBadMagic,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ch := startServer(t, tt.opts)
			r := rawClient{t, c}
			r.greet(fixed)
			tt.script(r)
			res := <-ch
			if tt.wantErr == nil {
				if res.err != nil {
					t.Fatalf("ServerHandshake: %v", res.err)
				}
				return
			}
			if !errors.Is(res.err, tt.wantErr) {
				t.Fatalf("ServerHandshake error %v, want %v", res.err, tt.wantErr)
			}
		})
	}
}

func TestServerUnknownClientFlags(t *testing.T) {
	c, ch := startServer(t, ServerOptions{})
	r := rawClient{t, c}
	r.greet(ClientFlagFixedNewstyle | 1<<5)
	r.expectClosed()
	if res := <-ch; !errors.Is(res.err, ErrInvalid) {
		t.Fatalf("ServerHandshake error %v, want ErrInvalid", res.err)
	}
}

func TestServerExportName(t *testing.T) {
	for _, tt := range []struct {
		name  string
		flags uint32
		want  []byte
	}{{
		name:  "with zeroes",
		flags: ClientFlagFixedNewstyle,
		want: append([]byte{
			0, 0, 0, 0, 0x40, 0, 0, 0, // size 1 GiB
			0x00, 0x0d, // HAS_FLAGS|SEND_FLUSH|SEND_FUA (DF cleared: no structured replies)
		}, make([]byte, 124)...), // padding
	}, {
		name:  "NO_ZEROES",
		flags: ClientFlagFixedNewstyle | ClientFlagNoZeroes,
		want: []byte{
			0, 0, 0, 0, 0x40, 0, 0, 0, // size 1 GiB
			0x00, 0x0d, // flags; no padding
		},
	}, {
		name:  "old newstyle client",
		flags: 0,
		want: append([]byte{
			0, 0, 0, 0, 0x40, 0, 0, 0, // size
			0x00, 0x0d, // flags
		}, make([]byte, 124)...),
	}} {
		t.Run(tt.name, func(t *testing.T) {
			c, ch := startServer(t, ServerOptions{})
			r := rawClient{t, c}
			r.greet(tt.flags)
			r.send(OptExportName, []byte("root"))
			got := make([]byte, len(tt.want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read EXPORT_NAME reply: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("EXPORT_NAME reply\n% x\nwant\n% x", got, tt.want)
			}
			res := <-ch
			if res.err != nil {
				t.Fatalf("ServerHandshake: %v", res.err)
			}
			if res.sess.NoZeroes != (tt.flags&ClientFlagNoZeroes != 0) || res.sess.Export.Name != "root" {
				t.Errorf("Session %+v", res.sess)
			}
		})
	}
}

// rwPair lets a test swap the connection StartTLS returns.
type rwPair struct {
	io.Reader
	io.Writer
}

func TestServerStartTLSDropsState(t *testing.T) {
	var upgraded io.ReadWriter
	opts := ServerOptions{
		TLSRequired: true,
		StartTLS: func(rw io.ReadWriter) (io.ReadWriter, error) {
			upgraded = rwPair{rw, rw}
			return upgraded, nil
		},
	}
	c, ch := startServer(t, opts)
	r := rawClient{t, c}
	r.greet(ClientFlagFixedNewstyle)
	r.send(OptStructuredReply, nil)
	r.expect(OptStructuredReply, RepErrTLSReqd)
	r.send(OptStartTLS, nil)
	r.expect(OptStartTLS, RepAck)
	r.send(OptStartTLS, nil)
	r.expect(OptStartTLS, RepErrInvalid)
	r.send(OptGo, infoReq(""))
	r.expect(OptGo, RepInfo)
	r.expect(OptGo, RepAck)
	res := <-ch
	if res.err != nil {
		t.Fatalf("ServerHandshake: %v", res.err)
	}
	if !res.sess.TLS || res.sess.Conn != upgraded || res.sess.Structured {
		t.Errorf("Session %+v: want TLS on the upgraded conn", res.sess)
	}
}

// TestStartTLSForgetsPlaintextState checks CVE-2021-3716: structured replies
// and meta contexts negotiated before STARTTLS do not survive it.
func TestStartTLSForgetsPlaintextState(t *testing.T) {
	opts := ServerOptions{StartTLS: func(rw io.ReadWriter) (io.ReadWriter, error) { return rw, nil }}
	c, ch := startServer(t, opts)
	r := rawClient{t, c}
	r.greet(ClientFlagFixedNewstyle)
	r.send(OptStructuredReply, nil)
	r.expect(OptStructuredReply, RepAck)
	r.send(OptSetMetaContext, metaReq("", MetaContextBaseAllocation))
	r.expect(OptSetMetaContext, RepMetaContext)
	r.expect(OptSetMetaContext, RepAck)
	r.send(OptStartTLS, nil)
	r.expect(OptStartTLS, RepAck)
	r.send(OptSetMetaContext, metaReq("", MetaContextBaseAllocation))
	r.expect(OptSetMetaContext, RepErrInvalid) // structured replies forgotten
	r.send(OptGo, infoReq(""))
	r.expect(OptGo, RepInfo)
	r.expect(OptGo, RepAck)
	res := <-ch
	if res.err != nil {
		t.Fatalf("ServerHandshake: %v", res.err)
	}
	if res.sess.Structured || res.sess.MetaContexts != nil {
		t.Errorf("Session %+v kept state from before STARTTLS", res.sess)
	}
}

func TestMetaContextsNeedSameExport(t *testing.T) {
	c, ch := startServer(t, ServerOptions{})
	r := rawClient{t, c}
	r.greet(ClientFlagFixedNewstyle)
	r.send(OptStructuredReply, nil)
	r.expect(OptStructuredReply, RepAck)
	r.send(OptSetMetaContext, metaReq("root", MetaContextBaseAllocation))
	r.expect(OptSetMetaContext, RepMetaContext)
	r.expect(OptSetMetaContext, RepAck)
	r.send(OptGo, infoReq(""))
	r.expect(OptGo, RepInfo)
	r.expect(OptGo, RepAck)
	res := <-ch
	if res.err != nil {
		t.Fatalf("ServerHandshake: %v", res.err)
	}
	if !res.sess.Structured || res.sess.MetaContexts != nil {
		t.Errorf("Session %+v: contexts set for another export must not apply", res.sess)
	}
}

func TestClientUnknownExportViaExportName(t *testing.T) {
	c, s := pipe(t)
	go func() {
		// A server without GO that refuses the export by closing.
		b := binary.BigEndian.AppendUint64(nil, NBDMagic)
		b = binary.BigEndian.AppendUint64(b, IHaveOpt)
		b = binary.BigEndian.AppendUint16(b, 0)
		s.Write(b)
		io.ReadFull(s, make([]byte, 4+OptionHeaderSize+len("x")))
		s.Close()
	}()
	_, err := ClientHandshake(c, ClientOptions{Export: "x"})
	if !errors.Is(err, ErrUnknownExport) {
		t.Fatalf("ClientHandshake error %v, want ErrUnknownExport", err)
	}
}

func TestClientRejectsOldstyle(t *testing.T) {
	c, s := pipe(t)
	go func() {
		b := binary.BigEndian.AppendUint64(nil, NBDMagic)
		b = binary.BigEndian.AppendUint64(b, OldstyleMagic)
		s.Write(append(b, make([]byte, 8+4+124)...))
	}()
	if _, err := ClientHandshake(c, ClientOptions{}); !errors.Is(err, ErrOldstyle) {
		t.Fatalf("ClientHandshake error %v, want ErrOldstyle", err)
	}
}

func TestClientOptionsChecked(t *testing.T) {
	for _, tt := range []struct {
		opts ClientOptions
		want error
	}{
		{ClientOptions{Export: string(make([]byte, MaxStringLen+1))}, ErrTooLong},
		{ClientOptions{Structured: true, MetaContexts: []string{"allocation"}}, ErrInvalid},
		{ClientOptions{Structured: true, MetaContexts: make([]string, MaxMetaQueries+1)}, ErrTooMany},
	} {
		// Nothing is read or written: a nil ReadWriter would panic.
		if _, err := ClientHandshake(nil, tt.opts); !errors.Is(err, tt.want) {
			t.Errorf("ClientHandshake(%.60v) error %v, want %v", tt.opts, err, tt.want)
		}
	}
}
