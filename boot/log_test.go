package boot

import (
	"bytes"
	"testing"
	"time"
)

func TestLoggerFormat(t *testing.T) {
	clock := newFakeClock()
	var buf bytes.Buffer
	l := NewLogger(&buf, clock)
	clock.advance(111 * time.Millisecond)
	ph := l.Phase("network")
	clock.advance(301 * time.Millisecond)
	ph.Done("eth0 %s via dhcp", "10.0.2.15/24")
	l.Debugf("hidden")
	l.SetDebug(true)
	l.Debugf("shown %d", 1)
	want := "nbdboot: [   0.412s] network: eth0 10.0.2.15/24 via dhcp (0.301s)\n" +
		"nbdboot: [   0.412s] debug: shown 1\n"
	if buf.String() != want {
		t.Errorf("log =\n%q\nwant\n%q", buf.String(), want)
	}
}
