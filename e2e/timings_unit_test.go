package e2e

import (
	"testing"
	"time"
)

func TestParseTimings(t *testing.T) {
	lines := []string{
		"nbdboot: [   0.016s] cmdline: console=ttyS0 nbdroot=nbd:10.0.2.100:10809/root",
		"nbdboot: [   0.715s] modules: nbd virtio_ring virtio virtio_net (0.686s)\r",
		"nbdboot: [   0.912s] network: eth0 10.0.2.15/24 via dhcp (0.197s)",
		"nbdboot: [   0.990s] connect: nbd://10.0.2.100:10809/root: 67108864 bytes, flags 0x01ed (attempt 1) (0.078s)",
		"nbdboot: [   1.250s] switch_root: /newroot to nbd://10.0.2.100:10809/root on /dev/nbd0; 1.250s from /init to switch_root, kernel uptime 3.125s",
		"NBDBOOT-ROOT-INIT ok id=x mode=write root=/dev/nbd0 ext4 rw,relatime",
	}
	tm := parseTimings(lines)
	if tm.InitToSwitch != 1250*time.Millisecond || tm.KernelUptime != 3125*time.Millisecond {
		t.Errorf("switch_root timings = %v, %v; want 1.25s, 3.125s", tm.InitToSwitch, tm.KernelUptime)
	}
	want := map[string]time.Duration{"modules": 686 * time.Millisecond, "network": 197 * time.Millisecond, "connect": 78 * time.Millisecond}
	for k, v := range want {
		if tm.Phases[k] != v {
			t.Errorf("phase %s = %v, want %v", k, tm.Phases[k], v)
		}
	}
	if len(tm.Phases) != len(want) {
		t.Errorf("phases = %v, want only %v", tm.Phases, want)
	}
	if got := parseTimings(lines[:1]); got.InitToSwitch != 0 || len(got.Phases) != 0 {
		t.Errorf("no timings expected from %q, got %+v", lines[0], got)
	}
}
