package main

import (
	"os"
	"strings"
	"testing"
)

func TestParseHeldKiB(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int64
		err      bool
	}{
		{"anon and shmem, file pages left out", "Name:\tnbdserve\nVmHWM:\t  800000 kB\nVmRSS:\t  790000 kB\nRssAnon:\t   12000 kB\nRssFile:\t  778000 kB\nRssShmem:\t      16 kB\n", 12016, false},
		{"kernel thread without the lines", "Name:\tkthreadd\nState:\tS (sleeping)\n", 0, true},
		{"garbage value", "RssAnon:\t x kB\nRssShmem:\t 0 kB\n", 0, true},
	} {
		got, err := parseHeldKiB(strings.NewReader(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: got %d, %v; want %d, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// TestMemSamplerSelf: the sampler reads this process's memory and keeps
// a peak of at least the last sample.
func TestMemSamplerSelf(t *testing.T) {
	m := startMemSampler(os.Getpid())
	defer m.Stop()
	now, err := heldKiB(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Peak(); p <= 0 || now <= 0 {
		t.Fatalf("peak %d KiB, now %d KiB; want both above 0", p, now)
	}
}
