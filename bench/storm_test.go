package main

import "testing"

func TestStormFloor(t *testing.T) {
	for _, c := range []struct {
		name            string
		cpu             float64
		cores           int
		lastStart, lone float64
		want            float64
	}{
		{"work spread over the cores, less the last start", 7, 2, 0.5, 0.9, 3},
		{"one core", 7, 1, 1, 0.9, 6},
		{"little work: a lone client's time", 1, 2, 0.9, 0.9, 0.9},
		{"no cores reported counts as one", 2, 0, 0, 0.5, 2},
	} {
		if got := stormFloor(c.cpu, c.cores, c.lastStart, c.lone); got != c.want {
			t.Errorf("%s: stormFloor(%v, %d, %v, %v) = %v, want %v", c.name, c.cpu, c.cores, c.lastStart, c.lone, got, c.want)
		}
	}
}

func TestParseMachineTimes(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice, in
	// ticks of 1/100 s
	got, err := parseMachineTimes("cpu  100 50 30 400 20 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (machineTimes{busy: 1.86, idle: 4.2}); got != want {
		t.Errorf("parseMachineTimes = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3\n", "cpu 1 2 x 4 5 6 7 8\n"} {
		if _, err := parseMachineTimes(bad); err == nil {
			t.Errorf("parseMachineTimes(%q): no error", bad)
		}
	}
}
