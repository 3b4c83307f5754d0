package main

import (
	"strings"
	"testing"
)

func TestRunInitramfsErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "-o FILE is required"},
		{[]string{"-o", "x", "-compress", "xz"}, "compression \"xz\""},
		{[]string{"-o", "x", "extra"}, "unexpected argument"},
		{[]string{"-o", "x", "-kmod", t.TempDir()}, "kernel modules under"},
	} {
		err := runInitramfs(tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("runInitramfs(%q) = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}
