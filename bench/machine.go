package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// machineTimes is the whole machine's CPU time so far from /proc/stat's
// first line, in seconds summed over the cores: busy (user, nice,
// system, irq, softirq, steal) and idle (idle, iowait).
type machineTimes struct{ busy, idle float64 }

// readMachineTimes reads /proc/stat.
func readMachineTimes() (machineTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineTimes{}, fmt.Errorf("read machine CPU times: %w", err)
	}
	return parseMachineTimes(string(b))
}

// parseMachineTimes decodes the "cpu" line of /proc/stat: user nice
// system idle iowait irq softirq steal [guest guest_nice], in clock
// ticks (guest time is already counted in user and nice).
func parseMachineTimes(stat string) (machineTimes, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return machineTimes{}, fmt.Errorf("/proc/stat: first line %q is not the cpu totals", line)
	}
	var v [8]float64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return machineTimes{}, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
		}
		v[i] = float64(n) / clockTicks
	}
	return machineTimes{busy: v[0] + v[1] + v[2] + v[5] + v[6] + v[7], idle: v[3] + v[4]}, nil
}

// since is the time spent from t to m.
func (m machineTimes) since(t machineTimes) machineTimes {
	return machineTimes{busy: m.busy - t.busy, idle: m.idle - t.idle}
}
