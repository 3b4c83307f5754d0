//go:build !nbdboot_init

package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestRunMediaErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.img")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "no medium given"},
		{[]string{"dvd", "-o", out}, "unknown medium \"dvd\""},
		{[]string{"usb"}, "-o FILE is required"},
		{[]string{"usb", "-o", out, "extra"}, "unexpected argument"},
		{[]string{"usb", "-o", out, "-kernel", "/nonexistent/bzImage", "-cmdline", "ip=dhcp nbdroot=nbd://:x/lab"}, "nbdroot=nbd://:x/lab"},
		{[]string{"iso", "-o", out, "-cmdline", "ip=dhcp"}, "names no root"},
		{[]string{"floppy", "-o", out, "-kernel-url", "http://s/k"}, "needs a command line"},
	} {
		err := runMedia(tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("runMedia(%q) = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}
