package pxe

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	testIP   = net.IPv4(10, 0, 3, 1).To4()
	macKnown = net.HardwareAddr{0x52, 0x54, 0, 0x9e, 0, 1}
	macOther = net.HardwareAddr{0x52, 0x54, 0, 0x9e, 0, 0x99}
)

// testService is a Service with no sockets, for answer and the handlers.
func testService(t *testing.T, def Machine, list ...Machine) (*Service, *bytes.Buffer) {
	t.Helper()
	m, err := newMachines(def, list)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cfg := Config{Interface: "br0", Kernel: "k", Initramfs: "i", Default: def, Machines: list}.WithDefaults()
	s := newService(cfg, slog.New(slog.NewTextHandler(&log, nil)), m, bootFiles{ip: testIP, httpPort: 8080, bios: "undionly.kpxe", efi: "snponly.efi"}, time.Now)
	s.mask = net.CIDRMask(24, 32)
	return s, &log
}

// request builds a client's DHCP message: typ, with the PXE vendor class
// and architecture when arch >= 0, user class uc when set.
func request(t *testing.T, mac net.HardwareAddr, typ dhcpv4.MessageType, arch int, uc string) *dhcpv4.DHCPv4 {
	t.Helper()
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(typ)}
	if arch >= 0 {
		mods = append(mods,
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.Arch(arch))),
			dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, bytes.Repeat([]byte{7}, 16)...)))
	}
	if uc != "" {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte(uc)))
	}
	m, err := dhcpv4.New(append(mods, dhcpv4.WithHwAddr(mac))...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAnswerProxy: the proxyDHCP answers, per kind of client and port,
// field by field; clients not booted here get none.
func TestAnswerProxy(t *testing.T) {
	s, _ := testService(t, Machine{Export: "lab"})
	const scriptURL = "http://10.0.3.1:8080/boot/52-54-00-9e-00-01/script.ipxe"
	for _, tt := range []struct {
		name     string
		typ      dhcpv4.MessageType
		arch     int
		uc       string
		port4011 bool
		want     dhcpv4.MessageType // 0: no answer
		file     string
		opt43    bool // discovery control: boot the file at once
		sname    bool
	}{
		{"bios rom discover", dhcpv4.MessageTypeDiscover, 0, "", false, dhcpv4.MessageTypeOffer, "52-54-00-9e-00-01/undionly.kpxe", true, true},
		{"uefi discover: no option 43, on to 4011", dhcpv4.MessageTypeDiscover, 7, "", false, dhcpv4.MessageTypeOffer, "52-54-00-9e-00-01/snponly.efi", false, true},
		{"uefi on 4011", dhcpv4.MessageTypeRequest, 7, "", true, dhcpv4.MessageTypeAck, "52-54-00-9e-00-01/snponly.efi", false, true},
		{"efi bc discover", dhcpv4.MessageTypeDiscover, 9, "", false, dhcpv4.MessageTypeOffer, "52-54-00-9e-00-01/snponly.efi", false, true},
		{"ipxe discover", dhcpv4.MessageTypeDiscover, 0, "iPXE", false, dhcpv4.MessageTypeOffer, scriptURL, false, false},
		{"ipxe on 4011", dhcpv4.MessageTypeRequest, 0, "iPXE", true, dhcpv4.MessageTypeAck, scriptURL, false, false},
		{"uefi ipxe", dhcpv4.MessageTypeDiscover, 7, "iPXE", false, dhcpv4.MessageTypeOffer, scriptURL, false, false},
		{"not pxe", dhcpv4.MessageTypeDiscover, -1, "", false, 0, "", false, false},
		{"request on 67: the site's server's", dhcpv4.MessageTypeRequest, 0, "", false, 0, "", false, false},
		{"discover on 4011", dhcpv4.MessageTypeDiscover, 0, "", true, 0, "", false, false},
		{"arm64 uefi: no iPXE for it", dhcpv4.MessageTypeDiscover, 11, "", false, 0, "", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := request(t, macKnown, tt.typ, tt.arch, tt.uc)
			got := s.answer(req, tt.port4011)
			if tt.want == 0 {
				if got != nil {
					t.Fatalf("answered %s", got.Summary())
				}
				return
			}
			if got == nil {
				t.Fatal("no answer")
			}
			// Round trip through the wire format, as the client sees it.
			got, err := dhcpv4.FromBytes(got.ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			if got.MessageType() != tt.want || got.TransactionID != req.TransactionID || !bytes.Equal(got.ClientHWAddr, macKnown) {
				t.Errorf("type %s xid %s mac %s; want %s %s %s", got.MessageType(), got.TransactionID, got.ClientHWAddr, tt.want, req.TransactionID, macKnown)
			}
			if !got.YourIPAddr.IsUnspecified() {
				t.Errorf("proxyDHCP handed out %s", got.YourIPAddr)
			}
			if got.BootFileName != tt.file {
				t.Errorf("file %q, want %q", got.BootFileName, tt.file)
			}
			if !got.ServerIdentifier().Equal(testIP) || !got.ServerIPAddr.Equal(testIP) {
				t.Errorf("server id %s siaddr %s, want %s", got.ServerIdentifier(), got.ServerIPAddr, testIP)
			}
			if got.ClassIdentifier() != "PXEClient" {
				t.Errorf("vendor class %q, want PXEClient", got.ClassIdentifier())
			}
			if g, w := got.GetOneOption(dhcpv4.OptionClientMachineIdentifier), req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); !bytes.Equal(g, w) {
				t.Errorf("GUID %x, want the client's %x", g, w)
			}
			if o43 := got.GetOneOption(dhcpv4.OptionVendorSpecificInformation); tt.opt43 != (o43 != nil) || (o43 != nil && !bytes.Equal(o43, pxeBypass)) {
				t.Errorf("option 43 = %x, want it %v", o43, tt.opt43)
			}
			if (got.ServerHostName == testIP.String()) != tt.sname {
				t.Errorf("sname %q", got.ServerHostName)
			}
		})
	}
}

// TestAnswerRefused: with [pxe.default] refuse, an unknown machine gets no
// answer and a log line; a listed one boots its export.
func TestAnswerRefused(t *testing.T) {
	s, log := testService(t, Machine{Refuse: true}, Machine{MAC: macKnown.String(), Export: "pc1"})
	if got := s.answer(request(t, macOther, dhcpv4.MessageTypeDiscover, 0, ""), false); got != nil {
		t.Errorf("unknown machine answered: %s", got.Summary())
	}
	if !strings.Contains(log.String(), "mac="+macOther.String()+" step=refused") {
		t.Errorf("no refusal logged: %s", log)
	}
	if got := s.answer(request(t, macKnown, dhcpv4.MessageTypeDiscover, 0, ""), false); got == nil {
		t.Error("listed machine not answered")
	}
}

// TestCmdline: the template's fields and the machine's extra words.
func TestCmdline(t *testing.T) {
	got := cmdline("ip=dhcp nbdroot=nbd://${server}/${export} id=${mac}", "10.0.3.1:10810", Machine{MAC: "52:54:00:9e:00:01", Export: "lab", Append: "rw quiet"})
	if want := "ip=dhcp nbdroot=nbd://10.0.3.1:10810/lab id=52:54:00:9e:00:01 rw quiet"; got != want {
		t.Errorf("cmdline = %q, want %q", got, want)
	}
}

// TestScript pins the iPXE script.
func TestScript(t *testing.T) {
	got := script("http://10.0.3.1:80/boot/52-54-00-9e-00-01", macKnown, "ip=dhcp")
	want := `#!ipxe
echo nbdboot: 52:54:00:9e:00:01 boots from http://10.0.3.1:80/boot/52-54-00-9e-00-01
kernel http://10.0.3.1:80/boot/52-54-00-9e-00-01/kernel initrd=initramfs ip=dhcp || goto failed
initrd http://10.0.3.1:80/boot/52-54-00-9e-00-01/initramfs || goto failed
boot || goto failed
:failed
echo nbdboot: network boot failed, retrying in 10 seconds
sleep 10
reboot
`
	if got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
}
