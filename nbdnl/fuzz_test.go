package nbdnl

import (
	"reflect"
	"testing"

	"github.com/mdlayher/netlink"
)

// encodeStatusReply builds a STATUS reply the way the kernel does (no
// NLA_F_NESTED), for the round-trip check.
func encodeStatusReply(ds []DeviceStatus) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Do(AttrDeviceList, func() ([]byte, error) {
		list := netlink.NewAttributeEncoder()
		for _, d := range ds {
			list.Do(AttrDeviceItem, func() ([]byte, error) {
				item := netlink.NewAttributeEncoder()
				item.Uint32(AttrDeviceIndex, d.Index)
				var c uint8
				if d.Connected {
					c = 1
				}
				item.Uint8(AttrDeviceConnected, c)
				return item.Encode()
			})
		}
		return list.Encode()
	})
	b, _ := ae.Encode()
	return b
}

// FuzzDecodeStatus feeds arbitrary replies to the decoder: it must not
// panic, and whatever it accepts must survive a re-encode and decode.
func FuzzDecodeStatus(f *testing.F) {
	f.Add(statusTwo)
	f.Add(encodeStatusReply([]DeviceStatus{{Index: 3, Connected: true}}))
	f.Add([]byte{0x04, 0x00, 0x09, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := decodeStatus(b)
		if err != nil {
			return
		}
		again, err := decodeStatus(encodeStatusReply(ds))
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", ds, err)
		}
		if len(ds) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(again, ds) {
			t.Fatalf("round trip: %+v became %+v", ds, again)
		}
	})
}

// FuzzDecodeIndex checks that CONNECT replies and LINK_DEAD bodies never
// panic the decoder and that an accepted index round-trips.
func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex(12))
	f.Add([]byte{0x07, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, err := decodeIndex(b)
		if err != nil {
			return
		}
		if again, err := decodeIndex(encodeIndex(idx)); err != nil || again != idx {
			t.Fatalf("round trip of %d: %d, %v", idx, again, err)
		}
	})
}
