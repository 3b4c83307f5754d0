package pxe

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bootFilesIn writes stand-in kernel, initramfs and iPXE files under dir.
func bootFilesIn(t *testing.T, dir string) Config {
	t.Helper()
	c := Config{Interface: "lo"}
	for _, f := range []struct {
		dst  *string
		name string
	}{{&c.Kernel, "vmlinuz"}, {&c.Initramfs, "initramfs.cpio.gz"}, {&c.IPXEBIOS, "undionly.kpxe"}, {&c.IPXEEFI, "snponly.efi"}} {
		*f.dst = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.dst, []byte(f.name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.Default.Export = "lab"
	return c
}

// TestStartErrors: everything wrong at start-up is named before a port
// opens: a missing file (each of them), an interface that does not exist
// or has no IPv4 address, a bad config.
func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	good := bootFilesIn(t, dir)
	for _, tt := range []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"missing kernel", func(c *Config) { c.Kernel = filepath.Join(dir, "nope") }, []string{"pxe: kernel: open " + filepath.Join(dir, "nope")}},
		{"missing initramfs and iPXE", func(c *Config) { c.Initramfs = "/no/initrd"; c.IPXEEFI = "/no/snponly.efi" },
			[]string{"pxe: initramfs: open /no/initrd", "pxe: ipxe_efi: open /no/snponly.efi"}},
		{"directory as kernel", func(c *Config) { c.Kernel = dir }, []string{"is not a regular file"}},
		{"no such interface", func(c *Config) { c.Interface = "nbdboot-none0" }, []string{"pxe: interface nbdboot-none0"}},
		{"no kernel set", func(c *Config) { c.Kernel = "" }, []string{"pxe: kernel is not set"}},
		{"no export for the room", func(c *Config) { c.Default.Export = "" }, []string{"[pxe.default] names no export"}},
		{"bad mac", func(c *Config) { c.Machines = []Machine{{MAC: "52:54:00"}} }, []string{`machine mac "52:54:00"`}},
		{"mac twice", func(c *Config) {
			c.Machines = []Machine{{MAC: "52:54:00:00:00:01"}, {MAC: "52-54-00-00-00-01"}}
		}, []string{"machine 52:54:00:00:00:01 listed twice"}},
		{"dhcp range outside the subnet", func(c *Config) { c.DHCP = &DHCPConfig{RangeStart: "10.9.9.1", RangeEnd: "10.9.9.5"} },
			[]string{"is not inside 127.0.0.0/8"}},
		{"dhcp range backwards", func(c *Config) { c.DHCP = &DHCPConfig{RangeStart: "10.0.3.9", RangeEnd: "10.0.3.1"} },
			[]string{"empty or more than"}},
		{"dhcp: more machines than addresses, a negative rate", func(c *Config) {
			c.Machines = []Machine{{MAC: "52:54:00:00:00:01"}, {MAC: "52:54:00:00:00:02"}}
			c.DHCP = &DHCPConfig{RangeStart: "127.0.0.10", RangeEnd: "127.0.0.10", NewLeasesPerMinute: -1}
		}, []string{"pxe: 2 machines listed in [[pxe.machine]] but the dhcp range 127.0.0.10-127.0.0.10 has 1 addresses: each listed machine keeps one",
			"pxe: dhcp new_leases_per_minute -1 is negative"}},
		{"dhcp: known_only without machines", func(c *Config) {
			c.DHCP = &DHCPConfig{RangeStart: "127.0.0.10", RangeEnd: "127.0.0.20", KnownOnly: true}
		}, []string{"pxe: dhcp known_only is set but no [[pxe.machine]] is listed"}},
		{"per-address bounds", func(c *Config) { c.MaxTransfersPerAddress, c.MaxHTTPPerAddress = -1, 1000 },
			[]string{"max_transfers_per_address -1", "max_http_per_address 1000"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			s, err := Start(c, Options{ProbeDHCP: func(string) (net.IP, error) { return nil, nil }})
			if err == nil {
				s.Close()
				t.Fatal("started")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
