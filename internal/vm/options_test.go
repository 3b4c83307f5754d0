package vm

import (
	"slices"
	"strings"
	"testing"
)

func TestQemuArgs(t *testing.T) {
	args, err := qemuArgs(Options{
		Kernel:    "/k/vmlinux",
		Initramfs: "/k/initrd",
		Cmdline:   "ip=dhcp",
		NICs: []NIC{
			{User: &UserNet{Forwards: []Forward{{Guest: "10.0.2.100:10809", Host: "127.0.0.1:4000"}}}},
			{Tap: "tap7", Model: "e1000", MAC: "52:54:00:aa:bb:cc"},
		},
		Args: []string{"-smp", "2"},
	}, "/usr/bin/socat")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-accel tcg",
		"-m 256M",
		"-no-reboot",
		"-kernel /k/vmlinux",
		"-initrd /k/initrd",
		"-append console=ttyS0 panic=-1 ip=dhcp",
		"-chardev socket,id=qmp,fd=3,server=on,wait=off",
		"-netdev user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:10809-cmd:/usr/bin/socat -lf /dev/null - TCP:127.0.0.1:4000",
		"-device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,id=nic0,romfile=",
		"-netdev tap,id=net1,ifname=tap7,script=no,downscript=no",
		"-device e1000,netdev=net1,mac=52:54:00:aa:bb:cc,id=nic1,romfile=",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("qemu args lack %q:\n%s", want, line)
		}
	}
	if !slices.Equal(args[len(args)-2:], []string{"-smp", "2"}) {
		t.Errorf("extra args not last: %q", args)
	}
}

// TestQemuArgsFirmware: a firmware boot passes no kernel to qemu.
func TestQemuArgsFirmware(t *testing.T) {
	args, err := qemuArgs(Options{Firmware: true, Args: []string{"-cdrom", "/x.iso"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range args {
		if a == "-kernel" || a == "-append" || a == "-initrd" {
			t.Errorf("firmware boot has %s: %q", a, args)
		}
	}
	if !slices.Equal(args[len(args)-2:], []string{"-cdrom", "/x.iso"}) {
		t.Errorf("drive args not last: %q", args)
	}
}

func TestQemuArgsErrors(t *testing.T) {
	user := func(f Forward) NIC { return NIC{User: &UserNet{Forwards: []Forward{f}}} }
	tests := []struct {
		name string
		o    Options
	}{
		{"no kernel", Options{}},
		{"firmware boot with a kernel", Options{Firmware: true, Kernel: "k"}},
		{"firmware boot with a command line", Options{Firmware: true, Cmdline: "ip=dhcp"}},
		{"NIC without backend", Options{Kernel: "k", NICs: []NIC{{}}}},
		{"NIC with both", Options{Kernel: "k", NICs: []NIC{{User: &UserNet{}, Tap: "tap0"}}}},
		{"bad MAC", Options{Kernel: "k", NICs: []NIC{{User: &UserNet{}, MAC: "52:54"}}}},
		{"tap name with comma", Options{Kernel: "k", NICs: []NIC{{Tap: "tap0,script=/x"}}}},
		{"forward to another machine", Options{Kernel: "k", NICs: []NIC{user(Forward{Guest: "10.0.2.100:1", Host: "192.0.2.1:10809"})}}},
		{"forward guest not IPv4", Options{Kernel: "k", NICs: []NIC{user(Forward{Guest: "guest:1", Host: "127.0.0.1:1"})}}},
		{"forward without port", Options{Kernel: "k", NICs: []NIC{user(Forward{Guest: "10.0.2.100:1", Host: "127.0.0.1"})}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if args, err := qemuArgs(tt.o, "socat"); err == nil {
				t.Fatalf("qemuArgs accepted %+v: %q", tt.o, args)
			}
		})
	}
}

// TestNICBoot: a network-boot card keeps its option ROM only when asked,
// and is the first boot device.
func TestNICBoot(t *testing.T) {
	for _, tt := range []struct {
		nic  NIC
		want string
	}{
		{NIC{Tap: "tap1", MAC: "52:54:00:00:00:01", Boot: true, ROM: true}, "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,id=nic0,bootindex=1"},
		{NIC{Tap: "tap1", MAC: "52:54:00:00:00:01", Boot: true}, "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,id=nic0,romfile=,bootindex=1"},
		{NIC{Tap: "tap1", MAC: "52:54:00:00:00:01"}, "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,id=nic0,romfile="},
	} {
		args, err := nicArgs(0, tt.nic, "")
		if err != nil {
			t.Fatal(err)
		}
		if args[3] != tt.want {
			t.Errorf("%+v: -device %s, want %s", tt.nic, args[3], tt.want)
		}
	}
}
