package kmod

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"", "", true},
		{"", "a", false},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*", "", true},
		{"*", "any/thing", true}, // no FNM_PATHNAME: '*' crosses '/'
		{"a*", "a", true},
		{"*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", false},
		{"pci:v*d*sv*sd*bc02sc00i*", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", true},
		{"virtio:d00000001v*", "virtio:d00000001v00001AF4", true},
		{"virtio:d00000001v*", "virtio:d00000002v00001AF4", false},
		{"net_pf_[0-9]", "net_pf_7", true},
		{"net_pf_[0-9]", "net_pf_x", false},
		{"x[!0-9]", "xa", true},
		{"x[!0-9]", "x5", false},
		{"x[^ab]", "xc", true},
		{"x[]]", "x]", true},
		{"x[a-]", "x-", true},
		{"x[ab", "x[ab", true}, // an unclosed class is literal
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{"acpi*:PNP0A03:*", "acpi:PNP0A03:", true},
		{"cpu:type:x86,ven*fam*mod*:feature:*0094*", "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001,0094,00E5", true},
	}
	for _, tt := range tests {
		if got := match(tt.pattern, tt.name); got != tt.want {
			t.Errorf("match(%q, %q) = %t, want %t", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/fs/ext4/ext4.ko":                 "ext4",
		"kernel/arch/x86/crypto/crc32c-intel.ko": "crc32c_intel",
		"kernel/drivers/net/virtio_net.ko.xz":    "virtio_net",
		"kernel/drivers/net/virtio_net.ko.zst":   "virtio_net",
		"kernel/drivers/net/virtio_net.ko.gz":    "virtio_net",
		"/abs/path/net-failover.ko":              "net_failover",
	} {
		if got := nameFromPath(in); got != want {
			t.Errorf("nameFromPath(%q) = %q, want %q", in, got, want)
		}
	}
	if got := normalizeAlias("of:Nfoo-barT*C[a-z]-x"); got != "of:Nfoo_barT*C[a-z]_x" {
		t.Errorf("normalizeAlias = %q", got)
	}
}
