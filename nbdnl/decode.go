package nbdnl

import (
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
)

// DeviceStatus is one entry of a STATUS reply.
type DeviceStatus struct {
	Index uint32
	// Connected is true while the device has a configuration (it was
	// connected and not yet torn down).
	Connected bool
}

// Replies are decoded with netlink's AttributeDecoder, which checks every
// attribute's length against the bytes that are there and the size of
// u8/u32 payloads, and walks the attributes one at a time: what a reply
// makes us allocate is bounded by its own size.

var errNoIndex = errors.New("reply carries no NBD_ATTR_INDEX")

// decodeIndex returns the INDEX attribute of a CONNECT reply or a LINK_DEAD
// notification.
func decodeIndex(b []byte) (uint32, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return 0, err
	}
	for ad.Next() {
		if ad.Type() == AttrIndex {
			idx := ad.Uint32()
			if err := ad.Err(); err != nil {
				return 0, fmt.Errorf("NBD_ATTR_INDEX: %w", err)
			}
			return idx, nil
		}
	}
	if err := ad.Err(); err != nil {
		return 0, err
	}
	return 0, errNoIndex
}

// decodeStatus decodes a STATUS reply:
// DEVICE_LIST{ DEVICE_ITEM{ DEVICE_INDEX u32, DEVICE_CONNECTED u8 }... }.
// Unknown attributes are skipped, as newer kernels may add some.
func decodeStatus(b []byte) ([]DeviceStatus, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	var out []DeviceStatus
	for ad.Next() {
		if ad.Type() != AttrDeviceList {
			continue
		}
		ad.Nested(func(list *netlink.AttributeDecoder) error {
			for i := 0; list.Next(); i++ {
				if list.Type() != AttrDeviceItem {
					continue
				}
				var d DeviceStatus
				var err error
				list.Nested(func(item *netlink.AttributeDecoder) error {
					d, err = decodeDeviceItem(item)
					return err
				})
				if err != nil {
					return fmt.Errorf("device list item %d: %w", i, err)
				}
				if err := list.Err(); err != nil {
					return fmt.Errorf("device list item %d: %w", i, err)
				}
				out = append(out, d)
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return nil, fmt.Errorf("device list: %w", err)
	}
	return out, nil
}

func decodeDeviceItem(item *netlink.AttributeDecoder) (DeviceStatus, error) {
	var d DeviceStatus
	var haveIndex bool
	for item.Next() {
		switch item.Type() {
		case AttrDeviceIndex:
			d.Index = item.Uint32()
			haveIndex = true
		case AttrDeviceConnected:
			d.Connected = item.Uint8() != 0
		}
	}
	if err := item.Err(); err != nil {
		return DeviceStatus{}, err
	}
	if !haveIndex {
		return DeviceStatus{}, errors.New("item without NBD_DEVICE_INDEX")
	}
	return d, nil
}
