package boot

import (
	"errors"
	"io"
	"strings"
	"testing"
)

type writeNopCloser struct{ io.Writer }

func (writeNopCloser) Close() error { return nil }

func TestKmsgWriter(t *testing.T) {
	line := "nbdboot: [  12.000s] supervisor: lost\n"
	for _, c := range []struct {
		name          string
		openErr       error
		showOnConsole bool
		kmsg, console string
	}{
		{"quiet boot: kernel log and console", nil, false, "<5>" + line, line},
		{"the kernel prints notices itself", nil, true, "<5>" + line, ""},
		{"no /dev/kmsg: console only", errors.New("ENOENT"), true, "", line},
	} {
		var kmsg, console strings.Builder
		w := &kmsgWriter{console: &console, showOnConsole: c.showOnConsole, open: func() (io.WriteCloser, error) {
			if c.openErr != nil {
				return nil, c.openErr
			}
			return writeNopCloser{&kmsg}, nil
		}}
		if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
			t.Errorf("%s: Write = %d, %v", c.name, n, err)
		}
		if kmsg.String() != c.kmsg || console.String() != c.console {
			t.Errorf("%s: kmsg %q console %q, want %q and %q", c.name, kmsg.String(), console.String(), c.kmsg, c.console)
		}
	}
}
