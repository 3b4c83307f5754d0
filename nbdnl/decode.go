package nbdnl

import (
	"errors"
	"fmt"
)

// DeviceStatus is one entry of a STATUS reply.
type DeviceStatus struct {
	Index uint32
	// Connected is true while the device has a configuration (it was
	// connected and not yet torn down).
	Connected bool
}

// Bounds on what a reply may make us allocate.
const (
	maxTopAttrs = 64
	maxDevices  = 1 << 20 // MINORMASK+1: more devices cannot exist
	maxItemAttr = 16
)

var errNoIndex = errors.New("reply carries no NBD_ATTR_INDEX")

// decodeIndex returns the INDEX attribute of a CONNECT reply or a LINK_DEAD
// notification.
func decodeIndex(b []byte) (uint32, error) {
	attrs, err := parseAttrs(b, maxTopAttrs)
	if err != nil {
		return 0, err
	}
	for _, a := range attrs {
		if a.Type == AttrIndex {
			return a.u32()
		}
	}
	return 0, errNoIndex
}

// decodeStatus decodes a STATUS reply:
// DEVICE_LIST{ DEVICE_ITEM{ DEVICE_INDEX u32, DEVICE_CONNECTED u8 }... }.
// Unknown attributes are skipped, as newer kernels may add some.
func decodeStatus(b []byte) ([]DeviceStatus, error) {
	attrs, err := parseAttrs(b, maxTopAttrs)
	if err != nil {
		return nil, err
	}
	var out []DeviceStatus
	for _, a := range attrs {
		if a.Type != AttrDeviceList {
			continue
		}
		items, err := parseAttrs(a.Data, maxDevices)
		if err != nil {
			return nil, fmt.Errorf("device list: %w", err)
		}
		for i, it := range items {
			if it.Type != AttrDeviceItem {
				continue
			}
			d, err := decodeDeviceItem(it.Data)
			if err != nil {
				return nil, fmt.Errorf("device list item %d: %w", i, err)
			}
			out = append(out, d)
		}
	}
	return out, nil
}

func decodeDeviceItem(b []byte) (DeviceStatus, error) {
	attrs, err := parseAttrs(b, maxItemAttr)
	if err != nil {
		return DeviceStatus{}, err
	}
	var d DeviceStatus
	var haveIndex bool
	for _, a := range attrs {
		switch a.Type {
		case AttrDeviceIndex:
			if d.Index, err = a.u32(); err != nil {
				return DeviceStatus{}, err
			}
			haveIndex = true
		case AttrDeviceConnected:
			c, err := a.u8()
			if err != nil {
				return DeviceStatus{}, err
			}
			d.Connected = c != 0
		}
	}
	if !haveIndex {
		return DeviceStatus{}, errors.New("item without NBD_DEVICE_INDEX")
	}
	return d, nil
}
