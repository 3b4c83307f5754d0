package nbdnl

import (
	"fmt"
	"strconv"
	"strings"
)

// DeviceIndex parses "/dev/nbdN" (or "nbdN") into N. Partitions
// ("/dev/nbd0p1") and other devices are refused.
func DeviceIndex(dev string) (uint32, error) {
	name := strings.TrimPrefix(dev, "/dev/")
	digits, ok := strings.CutPrefix(name, "nbd")
	if !ok || digits == "" {
		return 0, fmt.Errorf("device %q: not /dev/nbdN", dev)
	}
	if len(digits) > 1 && digits[0] == '0' {
		return 0, fmt.Errorf("device %q: leading zero in the device number", dev)
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("device %q: not /dev/nbdN (a partition or another device?)", dev)
		}
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("device %q: %w", dev, err)
	}
	return uint32(n), nil
}
