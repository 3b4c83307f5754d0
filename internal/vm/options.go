package vm

import (
	"fmt"
	"net"
	"strings"
)

// Options configure a guest. The zero value boots Kernel and Initramfs with
// 256 MiB and no network.
type Options struct {
	// Name labels the guest in the test log (several guests in a lab).
	Name string
	// Kernel and Initramfs default to the shared build outputs.
	Kernel    string
	Initramfs string
	// Cmdline is appended to "console=ttyS0 panic=-1".
	Cmdline string
	// Firmware boots through the firmware (SeaBIOS, or OVMF given with
	// -bios in Args) from the disks, CD or floppy in Args, without
	// -kernel: Kernel, Initramfs and Cmdline must be empty.
	Firmware bool
	// Memory in qemu syntax; default 256M.
	Memory string
	// Machine is qemu's -M; default "pc".
	Machine string
	// NICs are the guest's network cards, in PCI order.
	NICs []NIC
	// Args are extra qemu arguments, appended last.
	Args []string
	// NetNS runs qemu inside this network namespace (`ip netns exec`),
	// where a lab's tap devices live.
	NetNS string
}

// NIC is a guest network card on qemu user networking or on a tap device.
type NIC struct {
	// Model is the qemu device; default "virtio-net-pci" (romfile= is
	// added for PCI devices so no option ROM is loaded).
	Model string
	// MAC defaults to 52:54:00:12:34:56 plus the card's index.
	MAC string
	// User attaches the card to qemu's user networking (10.0.2.0/24,
	// DHCP from qemu, restrict=on: no traffic leaves qemu).
	User *UserNet
	// Tap attaches the card to an existing tap device (script=no); for
	// network namespace labs. Exactly one of User and Tap is set.
	Tap string
	// Boot makes the card the first boot device (bootindex=1), for a
	// network boot through the firmware (Options.Firmware): on OVMF its
	// own virtio-net driver and EDK2's PXE client.
	Boot bool
	// ROM keeps the card's option ROM (qemu's iPXE from Debian's
	// ipxe-qemu: SeaBIOS boots through it; OVMF runs its EFI iPXE).
	ROM bool
}

// UserNet configures qemu user networking.
type UserNet struct {
	// Forwards make guest connections to Guest reach Host, one relay
	// (socat) per connection, so the guest may reconnect and open
	// several connections.
	Forwards []Forward
	// Hostname is the host name qemu's DHCP server gives the guest
	// (option 12); "" for none.
	Hostname string
}

// Forward relays guest TCP connections to Guest ("10.0.2.100:10809") to
// Host ("127.0.0.1:PORT") on this machine.
type Forward struct {
	Guest string
	Host  string
}

// DefaultMemory is the guest memory when Options.Memory is empty.
const DefaultMemory = "256M"

// BaseCmdline is always passed to the kernel: the console on the first
// serial port, and a panic reboots at once, which -no-reboot turns into
// qemu exiting.
const BaseCmdline = "console=ttyS0 panic=-1"

// qmpFD is the file descriptor of the QMP listening socket in qemu.
const qmpFD = 3

// qemuArgs returns qemu's arguments for o, with QMP served on the listening
// socket passed as qmpFD and relays run by socat.
func qemuArgs(o Options, socat string) ([]string, error) {
	switch {
	case o.Firmware && (o.Kernel != "" || o.Initramfs != "" || o.Cmdline != ""):
		return nil, fmt.Errorf("vm options: a firmware boot takes no kernel, initramfs or command line")
	case !o.Firmware && o.Kernel == "":
		return nil, fmt.Errorf("vm options: no kernel")
	}
	mem := o.Memory
	if mem == "" {
		mem = DefaultMemory
	}
	machine := o.Machine
	if machine == "" {
		machine = "pc"
	}
	args := []string{
		"-accel", "tcg",
		"-M", machine,
		"-m", mem,
		"-nodefaults", "-nographic", "-no-reboot",
		"-serial", "stdio",
		"-monitor", "none",
		"-chardev", fmt.Sprintf("socket,id=qmp,fd=%d,server=on,wait=off", qmpFD),
		"-mon", "chardev=qmp,mode=control",
	}
	if !o.Firmware {
		args = append(args, "-kernel", o.Kernel, "-append", strings.TrimSpace(BaseCmdline+" "+o.Cmdline))
	}
	if o.Initramfs != "" {
		args = append(args, "-initrd", o.Initramfs)
	}
	for i, nic := range o.NICs {
		a, err := nicArgs(i, nic, socat)
		if err != nil {
			return nil, err
		}
		args = append(args, a...)
	}
	return append(args, o.Args...), nil
}

// NetdevID is the qemu netdev id of NIC i, for Monitor("set_link ...").
func NetdevID(i int) string { return fmt.Sprintf("net%d", i) }

// nicArgs returns the -netdev and -device arguments of NIC i.
func nicArgs(i int, nic NIC, socat string) ([]string, error) {
	id := NetdevID(i)
	var netdev string
	switch {
	case nic.User != nil && nic.Tap != "":
		return nil, fmt.Errorf("vm NIC %d: both User and Tap set", i)
	case nic.User != nil:
		var b strings.Builder
		fmt.Fprintf(&b, "user,id=%s,restrict=on", id)
		if h := nic.User.Hostname; h != "" {
			if strings.ContainsAny(h, ", ") {
				return nil, fmt.Errorf("vm NIC %d: bad hostname %q", i, h)
			}
			fmt.Fprintf(&b, ",hostname=%s", h)
		}
		for _, f := range nic.User.Forwards {
			if err := checkForward(f); err != nil {
				return nil, fmt.Errorf("vm NIC %d: %w", i, err)
			}
			host, port, _ := net.SplitHostPort(f.Host)
			// One socat per guest connection; its stdio is the connection.
			// qemu hands it the connection as stderr too: -lf keeps socat's
			// own messages out of the NBD stream.
			fmt.Fprintf(&b, ",guestfwd=tcp:%s-cmd:%s -lf /dev/null - TCP:%s", f.Guest, socat, net.JoinHostPort(host, port))
		}
		netdev = b.String()
	case nic.Tap != "":
		if strings.ContainsAny(nic.Tap, ", ") {
			return nil, fmt.Errorf("vm NIC %d: bad tap name %q", i, nic.Tap)
		}
		netdev = fmt.Sprintf("tap,id=%s,ifname=%s,script=no,downscript=no", id, nic.Tap)
	default:
		return nil, fmt.Errorf("vm NIC %d: neither User nor Tap set", i)
	}
	model := nic.Model
	if model == "" {
		model = "virtio-net-pci"
	}
	mac := nic.MAC
	if mac == "" {
		mac = fmt.Sprintf("52:54:00:12:34:%02x", 0x56+i)
	}
	if _, err := net.ParseMAC(mac); err != nil {
		return nil, fmt.Errorf("vm NIC %d: MAC %q: %w", i, mac, err)
	}
	dev := fmt.Sprintf("%s,netdev=%s,mac=%s,id=nic%d", model, id, mac, i)
	if !nic.ROM && (strings.HasSuffix(model, "-pci") || model == "e1000" || model == "e1000e") {
		dev += ",romfile="
	}
	if nic.Boot {
		dev += ",bootindex=1"
	}
	return []string{"-netdev", netdev, "-device", dev}, nil
}

// checkForward validates a Forward: the guest side must be an IPv4
// address and port, the host side a loopback address and port.
func checkForward(f Forward) error {
	gh, gp, err := net.SplitHostPort(f.Guest)
	if err != nil || net.ParseIP(gh).To4() == nil || gp == "" {
		return fmt.Errorf("forward guest address %q: want IPv4:PORT", f.Guest)
	}
	hh, hp, err := net.SplitHostPort(f.Host)
	if err != nil || hp == "" {
		return fmt.Errorf("forward host address %q: want HOST:PORT", f.Host)
	}
	if ip := net.ParseIP(hh); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("forward host address %q: must be a loopback address (traffic stays on this machine)", f.Host)
	}
	return nil
}
