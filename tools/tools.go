//go:build tools

// Package tools pins modules the build needs but no package of ours
// imports in every build: u-root (whose commands the initramfs builder
// compiles), mkuimage and the test harness's dependencies.
package tools

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/hugelgupf/vmtest/qemu"
	_ "github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	_ "github.com/mdlayher/genetlink"
	_ "github.com/mdlayher/netlink"
	_ "github.com/u-root/mkuimage/uimage"
	_ "github.com/u-root/u-root/pkg/cpio"
	_ "github.com/u-root/u-root/pkg/mount"
	_ "github.com/vishvananda/netlink"
	_ "golang.org/x/sys/unix"
)
