package media

import (
	"strings"
	"testing"
)

func TestCheckCmdline(t *testing.T) {
	tests := []struct {
		cmdline  string
		ipxeVars bool
		want     string // "" for accepted, else part of the error
	}{
		{"console=ttyS0 ip=dhcp nbdroot=nbd://10.0.0.1/lab rw", false, ""},
		{"ip=dhcp nbdroot=dhcp", false, ""},
		{"ip=dhcp root=nbd:srv:10809/lab:ext4", false, ""},
		{"ip=dhcp nbdroot=nbd://${next-server}/lab", true, ""},
		{"ip=dhcp nbdroot=nbd://${next-server}/lab", false, "a $ is not allowed"},
		{"ip=dhcp nbdroot=nbd://${next-server/lab", true, "a $ is not allowed"},
		{"", false, "empty"},
		{"ip=dhcp", false, "names no root"},
		{"ip=dhcp nbdroot=nbd://:1/lab", false, "nbdroot=nbd://:1/lab"},
		{"nbdroot=nbd://s/lab nbdboot.connections=99", false, "nbdboot.connections=99"},
		{"nbdroot=nbd://s/lab nbdboot.nosuch=1", false, "nbdboot.nosuch"},
		{"nbdroot=nbd://s/lab quiet\nrw", false, "printable ASCII"},
		{"nbdroot=nbd://s/lab x='a b'", false, "quotes"},
		{"nbdroot=nbd://s/lab x=\"a\"", false, "quotes"},
		{"nbdroot=nbd://s/lab x=é", false, "printable ASCII"},
		{"nbdroot=nbd://s/lab " + strings.Repeat("quiet ", 400), false, "more than 1900"},
	}
	for _, tt := range tests {
		err := checkCmdline(tt.cmdline, tt.ipxeVars)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("checkCmdline(%q, %v) = %v, want nil", tt.cmdline, tt.ipxeVars, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("checkCmdline(%q, %v) = %v, want an error containing %q", tt.cmdline, tt.ipxeVars, err, tt.want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{"http://${next-server}/kernel", "http://10.0.0.1:8080/boot/kernel", "http://server.lab/k"} {
		if err := checkURL(ok); err != nil {
			t.Errorf("checkURL(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"https://s/k", "tftp://s/k", "http:///k", "http://s/a b", "http://s/'k'", "/kernel"} {
		if err := checkURL(bad); err == nil {
			t.Errorf("checkURL(%q) accepted", bad)
		}
	}
}

func TestGrubWords(t *testing.T) {
	if got, want := grubWords(" a=1  b=$x  "), "'a=1' 'b=$x'"; got != want {
		t.Errorf("grubWords = %q, want %q", got, want)
	}
}
