package nbdnl

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

const fakeFamilyID = 0x1d

// fakeKernel answers generic netlink requests the way the kernel does:
// the nbd family lookup on the controller, then nbd requests with an
// optional reply and an ack in a separate message.
type fakeKernel struct {
	noFamily bool
	// answer returns the reply bodies (one genetlink message each) and an
	// errno (0 for success) for an nbd request.
	answer func(req genetlink.Message) (replies []genetlink.Message, errno int)
	// stale, when set, is delivered before the replies with a wrong
	// sequence number, as if left over from an interrupted request.
	stale bool
	got   []genetlink.Message // nbd requests received
	flags []netlink.HeaderFlags
}

func (k *fakeKernel) dial(t *testing.T) *genetlink.Conn {
	t.Helper()
	return genetlink.NewConn(nltest.Dial(k.serve))
}

func (k *fakeKernel) serve(reqs []netlink.Message) ([]netlink.Message, error) {
	if len(reqs) != 1 {
		return nil, fmt.Errorf("fake kernel: %d requests, want 1 (a Receive without request?)", len(reqs))
	}
	req := reqs[0]
	var gm genetlink.Message
	if err := gm.UnmarshalBinary(req.Data); err != nil {
		return nil, err
	}
	reply := func(typ netlink.HeaderType, m genetlink.Message) netlink.Message {
		b, _ := m.MarshalBinary()
		return netlink.Message{Header: netlink.Header{Type: typ, Sequence: req.Header.Sequence, PID: req.Header.PID}, Data: b}
	}
	if req.Header.Type == unix.GENL_ID_CTRL {
		if k.noFamily {
			return nltest.Error(int(unix.ENOENT), reqs)
		}
		return []netlink.Message{reply(unix.GENL_ID_CTRL, genetlink.Message{
			Header: genetlink.Header{Command: unix.CTRL_CMD_NEWFAMILY},
			Data:   familyAttrs(),
		})}, nil
	}
	if req.Header.Type != fakeFamilyID {
		return nil, fmt.Errorf("fake kernel: message type %d, want the nbd family %d", req.Header.Type, fakeFamilyID)
	}
	k.got = append(k.got, gm)
	k.flags = append(k.flags, req.Header.Flags)
	replies, errno := k.answer(gm)
	if errno != 0 {
		return nltest.Error(errno, reqs)
	}
	var out []netlink.Message
	if k.stale {
		m := reply(fakeFamilyID, genetlink.Message{Header: genetlink.Header{Command: CmdConnect}, Data: encodeIndex(99)})
		m.Header.Sequence--
		out = append(out, m)
	}
	for _, r := range replies {
		out = append(out, reply(fakeFamilyID, r))
	}
	ack := netlink.Message{
		Header: netlink.Header{Type: netlink.Error, Sequence: req.Header.Sequence, PID: req.Header.PID},
		Data:   make([]byte, 4+16), // errno 0, then the request's header
	}
	return append(out, ack), nil
}

func familyAttrs() []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Uint16(unix.CTRL_ATTR_FAMILY_ID, fakeFamilyID)
	ae.String(unix.CTRL_ATTR_FAMILY_NAME, FamilyName)
	ae.Uint32(unix.CTRL_ATTR_VERSION, FamilyVersion)
	ae.Nested(unix.CTRL_ATTR_MCAST_GROUPS, func(nae *netlink.AttributeEncoder) error {
		nae.Nested(1, func(g *netlink.AttributeEncoder) error {
			g.Uint32(unix.CTRL_ATTR_MCAST_GRP_ID, 7)
			g.String(unix.CTRL_ATTR_MCAST_GRP_NAME, MulticastGroup)
			return nil
		})
		return nil
	})
	b, err := ae.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

func newFakeConn(t *testing.T, k *fakeKernel) *Conn {
	t.Helper()
	c, err := newConn(k.dial(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pipeFiles(t *testing.T, n int) []*os.File {
	t.Helper()
	var out []*os.File
	for range n {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		out = append(out, r)
	}
	return out
}

func indexReply(cmd uint8, idx uint32) genetlink.Message {
	return genetlink.Message{Header: genetlink.Header{Command: cmd, Version: FamilyVersion}, Data: encodeIndex(idx)}
}

func TestDialNoFamily(t *testing.T) {
	k := &fakeKernel{noFamily: true}
	_, err := newConn(k.dial(t))
	if !errors.Is(err, ErrNoFamily) {
		t.Fatalf("newConn error = %v, want ErrNoFamily", err)
	}
}

func TestFamilyResolved(t *testing.T) {
	c := newFakeConn(t, &fakeKernel{})
	if c.family.ID != fakeFamilyID || len(c.family.Groups) != 1 || c.family.Groups[0].Name != MulticastGroup {
		t.Errorf("family = %+v", c.family)
	}
}

func TestConnect(t *testing.T) {
	for _, stale := range []bool{false, true} {
		t.Run(fmt.Sprintf("stale=%v", stale), func(t *testing.T) {
			k := &fakeKernel{stale: stale, answer: func(req genetlink.Message) ([]genetlink.Message, int) {
				return []genetlink.Message{indexReply(CmdConnect, 5)}, 0
			}}
			c := newFakeConn(t, k)
			socks := pipeFiles(t, 1)
			cfg := ConnectConfig{Size: 1 << 30, BlockSize: 512, Sockets: socks, BackendID: "b"}
			idx, err := c.Connect(cfg)
			if err != nil || idx != 5 {
				t.Fatalf("Connect = %d, %v; want 5, nil", idx, err)
			}
			if len(k.got) != 1 {
				t.Fatalf("kernel got %d requests, want 1", len(k.got))
			}
			got := k.got[0]
			if got.Header.Command != CmdConnect || got.Header.Version != FamilyVersion {
				t.Errorf("header = %+v, want command %d version %d", got.Header, CmdConnect, FamilyVersion)
			}
			if want := netlink.Request | netlink.Acknowledge; k.flags[0] != want {
				t.Errorf("flags = %v, want %v", k.flags[0], want)
			}
			want, _ := encodeConnect(cfg, []uint32{uint32(socks[0].Fd())})
			if !bytes.Equal(got.Data, want) {
				t.Errorf("body:\n got % x\nwant % x", got.Data, want)
			}
			// The socket is clean: a second request works.
			if _, err := c.Connect(cfg); err != nil {
				t.Errorf("second Connect: %v", err)
			}
		})
	}
}

func TestConnectKernelError(t *testing.T) {
	k := &fakeKernel{answer: func(genetlink.Message) ([]genetlink.Message, int) { return nil, int(unix.EBUSY) }}
	c := newFakeConn(t, k)
	_, err := c.Connect(ConnectConfig{Index: u32p(3), Size: 4096, Sockets: pipeFiles(t, 1)})
	if !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "/dev/nbd3") || !strings.Contains(err.Error(), "already connected") {
		t.Errorf("Connect error = %v, want EBUSY naming /dev/nbd3 with a hint", err)
	}
}

func TestConnectInvalid(t *testing.T) {
	k := &fakeKernel{answer: func(genetlink.Message) ([]genetlink.Message, int) {
		return []genetlink.Message{indexReply(CmdConnect, 0)}, 0
	}}
	c := newFakeConn(t, k)
	c.pageSize = 4096
	one, two := pipeFiles(t, 1), pipeFiles(t, 2)
	tests := []struct {
		name string
		cfg  ConnectConfig
		want string
	}{
		{"no sockets", ConnectConfig{Size: 4096}, "no sockets"},
		{"nil socket", ConnectConfig{Size: 4096, Sockets: []*os.File{nil}}, "socket 0 is nil"},
		{"empty export", ConnectConfig{Sockets: one}, "size 0"},
		{"huge", ConnectConfig{Size: 1 << 63, Sockets: one}, "loff_t"},
		{"block size not a power of two", ConnectConfig{Size: 4096, BlockSize: 1000, Sockets: one}, "block size 1000"},
		{"block size too small", ConnectConfig{Size: 4096, BlockSize: 256, Sockets: one}, "block size 256"},
		{"block size above page", ConnectConfig{Size: 1 << 20, BlockSize: 8192, Sockets: one}, "block size 8192"},
		{"negative timeout", ConnectConfig{Size: 4096, Timeout: -1, Sockets: one}, "timeout"},
		{"negative dead-conn timeout", ConnectConfig{Size: 4096, DeadConnTimeout: -1, Sockets: one}, "dead connection timeout"},
		{"two sockets without multi-conn", ConnectConfig{Size: 4096, Sockets: two}, "CAN_MULTI_CONN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Connect(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "nbd connect") {
				t.Errorf("Connect error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if len(k.got) != 0 {
		t.Errorf("%d invalid requests reached the kernel", len(k.got))
	}
}

func TestReconfigureDisconnect(t *testing.T) {
	k := &fakeKernel{answer: func(genetlink.Message) ([]genetlink.Message, int) { return nil, 0 }}
	c := newFakeConn(t, k)
	socks := pipeFiles(t, 1)
	if err := c.Reconfigure(2, ReconfigureConfig{Sockets: socks, BackendID: "x"}); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	if err := c.Disconnect(2); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if len(k.got) != 2 || k.got[0].Header.Command != CmdReconfigure || k.got[1].Header.Command != CmdDisconnect {
		t.Fatalf("requests = %+v", k.got)
	}
	want, _ := encodeReconfigure(2, ReconfigureConfig{BackendID: "x"}, []uint32{uint32(socks[0].Fd())})
	if !bytes.Equal(k.got[0].Data, want) {
		t.Errorf("reconfigure body % x, want % x", k.got[0].Data, want)
	}
	if !bytes.Equal(k.got[1].Data, encodeDisconnect(2)) {
		t.Errorf("disconnect body % x", k.got[1].Data)
	}
	if err := c.Reconfigure(2, ReconfigureConfig{}); err == nil {
		t.Error("Reconfigure without sockets accepted")
	}
}

func TestDisconnectError(t *testing.T) {
	k := &fakeKernel{answer: func(genetlink.Message) ([]genetlink.Message, int) { return nil, int(unix.EINVAL) }}
	c := newFakeConn(t, k)
	err := c.Disconnect(9)
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "/dev/nbd9") {
		t.Errorf("Disconnect error = %v", err)
	}
}

func TestStatus(t *testing.T) {
	requireLittleEndian(t)
	k := &fakeKernel{answer: func(req genetlink.Message) ([]genetlink.Message, int) {
		// Reversed order, to check sorting.
		body := []byte{
			0x2c, 0x00, 0x09, 0x00, // len 44, NBD_ATTR_DEVICE_LIST
			0x14, 0x00, 0x01, 0x00, //   len 20, NBD_DEVICE_ITEM
			0x08, 0x00, 0x01, 0x00, //     len 8, NBD_DEVICE_INDEX
			0x07, 0x00, 0x00, 0x00, //     u32 7
			0x05, 0x00, 0x02, 0x00, //     len 5, NBD_DEVICE_CONNECTED
			0x00, 0x00, 0x00, 0x00, //     u8 0 + pad
			0x14, 0x00, 0x01, 0x00, //   len 20, NBD_DEVICE_ITEM
			0x08, 0x00, 0x01, 0x00, //     len 8, NBD_DEVICE_INDEX
			0x01, 0x00, 0x00, 0x00, //     u32 1
			0x05, 0x00, 0x02, 0x00, //     len 5, NBD_DEVICE_CONNECTED
			0x01, 0x00, 0x00, 0x00, //     u8 1 + pad
		}
		return []genetlink.Message{{Header: genetlink.Header{Command: CmdStatus, Version: FamilyVersion}, Data: body}}, 0
	}}
	c := newFakeConn(t, k)
	got, err := c.Status(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []DeviceStatus{{1, true}, {7, false}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Status = %+v, want %+v", got, want)
	}
	if len(k.got[0].Data) != 0 {
		t.Errorf("Status(nil) sent attributes % x, want none", k.got[0].Data)
	}
	if _, err := c.Status(u32p(1)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.got[1].Data, encodeStatus(u32p(1))) {
		t.Errorf("Status(1) body % x", k.got[1].Data)
	}
}
