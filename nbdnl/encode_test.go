package nbdnl

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// The byte vectors below are little-endian: netlink attributes are in host
// byte order, and every architecture this project boots is little-endian.
func requireLittleEndian(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("byte vectors are little-endian")
	}
}

func u32p(v uint32) *uint32 { return &v }

func TestEncodeConnect(t *testing.T) {
	requireLittleEndian(t)
	tests := []struct {
		name string
		cfg  ConnectConfig
		fds  []uint32
		want []byte
	}{{
		name: "everything",
		cfg: ConnectConfig{
			Index: u32p(3), Size: 1 << 20, BlockSize: 512,
			ServerFlags: ServerFlagHasFlags | ServerFlagReadOnly,
			Timeout:     30 * time.Second, DeadConnTimeout: time.Minute,
			BackendID: "root",
		},
		fds: []uint32{7},
		want: []byte{
			0x08, 0x00, 0x01, 0x00, // len 8, NBD_ATTR_INDEX
			0x03, 0x00, 0x00, 0x00, //   u32 3
			0x0c, 0x00, 0x02, 0x00, // len 12, NBD_ATTR_SIZE_BYTES
			0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, // u64 1 MiB
			0x0c, 0x00, 0x03, 0x00, // len 12, NBD_ATTR_BLOCK_SIZE_BYTES
			0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // u64 512
			0x0c, 0x00, 0x04, 0x00, // len 12, NBD_ATTR_TIMEOUT
			0x1e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // u64 30 s
			0x0c, 0x00, 0x05, 0x00, // len 12, NBD_ATTR_SERVER_FLAGS
			0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // HAS_FLAGS|READ_ONLY
			0x0c, 0x00, 0x06, 0x00, // len 12, NBD_ATTR_CLIENT_FLAGS
			0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // none
			0x0c, 0x00, 0x08, 0x00, // len 12, NBD_ATTR_DEAD_CONN_TIMEOUT
			0x3c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // u64 60 s
			0x10, 0x00, 0x07, 0x80, // len 16, NBD_ATTR_SOCKETS | NLA_F_NESTED
			0x0c, 0x00, 0x01, 0x80, //   len 12, NBD_SOCK_ITEM | NLA_F_NESTED
			0x08, 0x00, 0x01, 0x00, //     len 8, NBD_SOCK_FD
			0x07, 0x00, 0x00, 0x00, //     u32 fd 7
			0x09, 0x00, 0x0a, 0x00, // len 9, NBD_ATTR_BACKEND_IDENTIFIER
			'r', 'o', 'o', 't', 0x00, 0x00, 0x00, 0x00, // "root\0" + 3 pad
		},
	}, {
		name: "minimal, kernel picks index, two sockets, sub-second timeout rounds up",
		cfg: ConnectConfig{
			Size: 4096, ServerFlags: ServerFlagCanMultiConn,
			ClientFlags: ClientFlagDestroyOnDisconnect, Timeout: 1500 * time.Millisecond,
		},
		fds: []uint32{3, 4},
		want: []byte{
			0x0c, 0x00, 0x02, 0x00, // len 12, NBD_ATTR_SIZE_BYTES
			0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // u64 4096
			0x0c, 0x00, 0x04, 0x00, // len 12, NBD_ATTR_TIMEOUT
			0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 1.5 s -> 2 s
			0x0c, 0x00, 0x05, 0x00, // len 12, NBD_ATTR_SERVER_FLAGS
			0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // CAN_MULTI_CONN
			0x0c, 0x00, 0x06, 0x00, // len 12, NBD_ATTR_CLIENT_FLAGS
			0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // DESTROY_ON_DISCONNECT
			0x0c, 0x00, 0x08, 0x00, // len 12, NBD_ATTR_DEAD_CONN_TIMEOUT
			0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0: fail at once
			0x1c, 0x00, 0x07, 0x80, // len 28, NBD_ATTR_SOCKETS | NLA_F_NESTED
			0x0c, 0x00, 0x01, 0x80, //   len 12, NBD_SOCK_ITEM | NLA_F_NESTED
			0x08, 0x00, 0x01, 0x00, //     len 8, NBD_SOCK_FD
			0x03, 0x00, 0x00, 0x00, //     fd 3
			0x0c, 0x00, 0x01, 0x80, //   len 12, NBD_SOCK_ITEM | NLA_F_NESTED
			0x08, 0x00, 0x01, 0x00, //     len 8, NBD_SOCK_FD
			0x04, 0x00, 0x00, 0x00, //     fd 4
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeConnect(tt.cfg, tt.fds)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("encodeConnect:\n got % x\nwant % x", got, tt.want)
			}
		})
	}
}

func TestEncodeReconfigure(t *testing.T) {
	requireLittleEndian(t)
	tests := []struct {
		name  string
		index uint32
		cfg   ReconfigureConfig
		fds   []uint32
		want  []byte
	}{{
		name: "sockets only", index: 0, fds: []uint32{9},
		want: []byte{
			0x08, 0x00, 0x01, 0x00, // len 8, NBD_ATTR_INDEX
			0x00, 0x00, 0x00, 0x00, //   u32 0
			0x10, 0x00, 0x07, 0x80, // len 16, NBD_ATTR_SOCKETS | NLA_F_NESTED
			0x0c, 0x00, 0x01, 0x80, //   len 12, NBD_SOCK_ITEM | NLA_F_NESTED
			0x08, 0x00, 0x01, 0x00, //     len 8, NBD_SOCK_FD
			0x09, 0x00, 0x00, 0x00, //     fd 9
		},
	}, {
		name: "timeouts and backend", index: 2,
		cfg: ReconfigureConfig{Timeout: 10 * time.Second, DeadConnTimeout: 2 * time.Minute, BackendID: "abcd"},
		fds: []uint32{5},
		want: []byte{
			0x08, 0x00, 0x01, 0x00, // len 8, NBD_ATTR_INDEX
			0x02, 0x00, 0x00, 0x00, //   u32 2
			0x0c, 0x00, 0x04, 0x00, // len 12, NBD_ATTR_TIMEOUT
			0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 10 s
			0x0c, 0x00, 0x08, 0x00, // len 12, NBD_ATTR_DEAD_CONN_TIMEOUT
			0x78, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 120 s
			0x10, 0x00, 0x07, 0x80, // len 16, NBD_ATTR_SOCKETS | NLA_F_NESTED
			0x0c, 0x00, 0x01, 0x80, //   len 12, NBD_SOCK_ITEM | NLA_F_NESTED
			0x08, 0x00, 0x01, 0x00, //     len 8, NBD_SOCK_FD
			0x05, 0x00, 0x00, 0x00, //     fd 5
			0x09, 0x00, 0x0a, 0x00, // len 9, NBD_ATTR_BACKEND_IDENTIFIER
			'a', 'b', 'c', 'd', 0x00, 0x00, 0x00, 0x00, // "abcd\0" + 3 pad
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeReconfigure(tt.index, tt.cfg, tt.fds)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("encodeReconfigure:\n got % x\nwant % x", got, tt.want)
			}
		})
	}
}

func TestEncodeDisconnectStatus(t *testing.T) {
	requireLittleEndian(t)
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"disconnect 5", encodeDisconnect(5), []byte{
			0x08, 0x00, 0x01, 0x00, // len 8, NBD_ATTR_INDEX
			0x05, 0x00, 0x00, 0x00, //   u32 5
		}},
		{"status of 1", encodeStatus(u32p(1)), []byte{
			0x08, 0x00, 0x01, 0x00, // len 8, NBD_ATTR_INDEX
			0x01, 0x00, 0x00, 0x00, //   u32 1
		}},
		{"status of all", encodeStatus(nil), nil},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s:\n got % x\nwant % x", tt.name, tt.got, tt.want)
		}
	}
}

func TestEncodeAttrTooLong(t *testing.T) {
	cfg := ConnectConfig{Size: 4096, BackendID: string(make([]byte, 0xffff))}
	if _, err := encodeConnect(cfg, []uint32{3}); err == nil {
		t.Error("64 KiB backend identifier accepted")
	}
	if _, err := encodeReconfigure(0, ReconfigureConfig{BackendID: cfg.BackendID}, []uint32{3}); err == nil {
		t.Error("64 KiB backend identifier accepted in RECONFIGURE")
	}
}
