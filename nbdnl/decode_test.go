package nbdnl

import (
	"reflect"
	"testing"
)

// statusTwo is a STATUS reply body as the kernel builds it
// (nla_nest_start_noflag: no NLA_F_NESTED bit).
var statusTwo = []byte{
	0x2c, 0x00, 0x09, 0x00, // len 44, NBD_ATTR_DEVICE_LIST
	0x14, 0x00, 0x01, 0x00, //   len 20, NBD_DEVICE_ITEM
	0x08, 0x00, 0x01, 0x00, //     len 8, NBD_DEVICE_INDEX
	0x00, 0x00, 0x00, 0x00, //     u32 0
	0x05, 0x00, 0x02, 0x00, //     len 5, NBD_DEVICE_CONNECTED
	0x01, 0x00, 0x00, 0x00, //     u8 1 + 3 pad
	0x14, 0x00, 0x01, 0x00, //   len 20, NBD_DEVICE_ITEM
	0x08, 0x00, 0x01, 0x00, //     len 8, NBD_DEVICE_INDEX
	0x07, 0x00, 0x00, 0x00, //     u32 7
	0x05, 0x00, 0x02, 0x00, //     len 5, NBD_DEVICE_CONNECTED
	0x00, 0x00, 0x00, 0x00, //     u8 0 + 3 pad
}

func TestDecodeStatus(t *testing.T) {
	requireLittleEndian(t)
	tests := []struct {
		name    string
		in      []byte
		want    []DeviceStatus
		wantErr bool
	}{
		{name: "two devices", in: statusTwo, want: []DeviceStatus{{0, true}, {7, false}}},
		{name: "empty list", in: []byte{
			0x04, 0x00, 0x09, 0x00, // len 4, NBD_ATTR_DEVICE_LIST, no items
		}},
		{name: "nested flag and unknown attributes tolerated", in: []byte{
			0x08, 0x00, 0x63, 0x00, // len 8, unknown type 99
			0xff, 0xff, 0xff, 0xff, //   skipped
			0x1c, 0x00, 0x09, 0x80, // len 28, NBD_ATTR_DEVICE_LIST | NLA_F_NESTED
			0x18, 0x00, 0x01, 0x80, //   len 24, NBD_DEVICE_ITEM | NLA_F_NESTED
			0x08, 0x00, 0x01, 0x00, //     len 8, NBD_DEVICE_INDEX
			0x03, 0x00, 0x00, 0x00, //     u32 3
			0x05, 0x00, 0x02, 0x00, //     len 5, NBD_DEVICE_CONNECTED
			0x02, 0x00, 0x00, 0x00, //     u8 2 (non-zero: connected)
			0x04, 0x00, 0x09, 0x00, //     len 4, unknown item attribute 9
		}, want: []DeviceStatus{{3, true}}},
		{name: "last padding missing", in: []byte{
			0x15, 0x00, 0x09, 0x00, // len 21, NBD_ATTR_DEVICE_LIST
			0x11, 0x00, 0x01, 0x00, //   len 17, NBD_DEVICE_ITEM
			0x08, 0x00, 0x01, 0x00, //     len 8, NBD_DEVICE_INDEX
			0x04, 0x00, 0x00, 0x00, //     u32 4
			0x05, 0x00, 0x02, 0x00, //     len 5, NBD_DEVICE_CONNECTED
			0x01, //                       u8 1, no pad at the very end
		}, want: []DeviceStatus{{4, true}}},
		{name: "truncated header", in: []byte{0x08, 0x00}, wantErr: true},
		{name: "length beyond buffer", in: []byte{
			0x30, 0x00, 0x09, 0x00, // len 48, but only 8 bytes follow
			0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		}, wantErr: true},
		{name: "length below header", in: []byte{
			0x02, 0x00, 0x09, 0x00, // len 2 < 4
		}, wantErr: true},
		{name: "index is not a u32", in: []byte{
			0x10, 0x00, 0x09, 0x00, // len 16, NBD_ATTR_DEVICE_LIST
			0x0c, 0x00, 0x01, 0x00, //   len 12, NBD_DEVICE_ITEM
			0x06, 0x00, 0x01, 0x00, //     len 6, NBD_DEVICE_INDEX: 2 bytes
			0x01, 0x00, 0x00, 0x00, //     + pad
		}, wantErr: true},
		{name: "connected is not a u8", in: []byte{
			0x18, 0x00, 0x09, 0x00, // len 24, NBD_ATTR_DEVICE_LIST
			0x14, 0x00, 0x01, 0x00, //   len 20, NBD_DEVICE_ITEM
			0x08, 0x00, 0x01, 0x00, //     len 8, NBD_DEVICE_INDEX
			0x01, 0x00, 0x00, 0x00, //     u32 1
			0x08, 0x00, 0x02, 0x00, //     len 8, NBD_DEVICE_CONNECTED: 4 bytes
			0x01, 0x00, 0x00, 0x00,
		}, wantErr: true},
		{name: "item without index", in: []byte{
			0x10, 0x00, 0x09, 0x00, // len 16, NBD_ATTR_DEVICE_LIST
			0x0c, 0x00, 0x01, 0x00, //   len 12, NBD_DEVICE_ITEM
			0x05, 0x00, 0x02, 0x00, //     len 5, NBD_DEVICE_CONNECTED
			0x01, 0x00, 0x00, 0x00, //     u8 1 + pad
		}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeStatus(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("decodeStatus err = %v, wantErr %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decodeStatus = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeIndex(t *testing.T) {
	requireLittleEndian(t)
	tests := []struct {
		name    string
		in      []byte
		want    uint32
		wantErr bool
	}{
		{name: "connect reply", in: []byte{
			0x08, 0x00, 0x01, 0x00, // len 8, NBD_ATTR_INDEX
			0x0c, 0x00, 0x00, 0x00, //   u32 12
		}, want: 12},
		{name: "no index", in: []byte{
			0x0c, 0x00, 0x02, 0x00, // len 12, NBD_ATTR_SIZE_BYTES
			0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		}, wantErr: true},
		{name: "empty", in: nil, wantErr: true},
		{name: "short index", in: []byte{
			0x07, 0x00, 0x01, 0x00, // len 7, NBD_ATTR_INDEX: 3 bytes
			0x01, 0x00, 0x00, 0x00,
		}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeIndex(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("decodeIndex = %d, %v; want %d, wantErr %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// A reply of many devices decodes them all; memory follows the reply's
// size (the decoder walks attributes one at a time).
func TestDecodeStatusMany(t *testing.T) {
	var want []DeviceStatus
	for i := range 1000 {
		want = append(want, DeviceStatus{Index: uint32(i), Connected: i%3 == 0})
	}
	got, err := decodeStatus(encodeStatusReply(want))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("decodeStatus of 1000 devices = %d devices, %v", len(got), err)
	}
}
