package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// metric is one number a workload reports; higher says whether a larger
// value is better (throughput) or worse (latency).
type metric struct {
	name   string
	unit   string
	higher bool
	get    func(fioStats) float64
}

// workload is one fio job description run against every server, or a
// command of its own (run).
type workload struct {
	name    string
	args    []string
	metrics []metric
	// writes: the workload changes the image (left out on a shared
	// sparse image, which it would fill).
	writes bool
	// run, if set, measures the workload instead of fio.
	run func(o options, uri string, limit time.Duration) (fioStats, error)
}

// measure runs w against uri.
func (w workload) measure(o options, uri string, limit time.Duration) (fioStats, error) {
	if w.run != nil {
		return w.run(o, uri, limit)
	}
	return runFio(w, uri, limit)
}

// cowWorkloads are the workloads of the copy-on-write table.
var cowWorkloads = []string{"nbdcopy to null:", "seq read 256K QD16", "rand read 4K QD32 1 job", "rand write 4K QD32", "latency 4K QD1"}

// rampTime is fio's warm-up before it measures.
const rampTime = time.Second

// workloads returns the fio workloads, those named in names if not nil,
// without the ones that write if readOnly.
func workloads(o options, names []string, readOnly bool) []workload {
	secs := strconv.Itoa(int(o.runtime.Seconds()))
	common := []string{"--ioengine=nbd", "--direct=1", "--time_based", "--runtime=" + secs,
		"--ramp_time=" + strconv.Itoa(int(rampTime.Seconds())), "--group_reporting", "--output-format=json",
		"--size=" + strconv.FormatInt(o.size, 10)}
	iops := func(dir string) metric {
		return metric{dir + " IOPS", "k", true, func(s fioStats) float64 { return s.dir(dir).IOPS / 1000 }}
	}
	mbs := metric{"MB/s", "MB/s", true, func(s fioStats) float64 { return (s.Read.BW + s.Write.BW) * 1024 / 1e6 }}
	// CPU per request: the server's CPU time over the requests fio made
	// in its run and warm-up (at the measured rate).
	cpu := metric{"server CPU µs/req", "µs", false, func(s fioStats) float64 {
		reqs := (s.Read.IOPS + s.Write.IOPS) * (o.runtime + rampTime).Seconds()
		if reqs == 0 {
			return 0
		}
		return s.serverCPU / reqs * 1e6
	}}
	// CPU per MiB, for the large transfers: the server's CPU time over
	// the bytes sent in the time it was measured.
	cpuMiB := metric{"server CPU µs/MiB", "µs", false, func(s fioStats) float64 {
		span := s.span
		if span == 0 {
			span = (o.runtime + rampTime).Seconds()
		}
		mib := (s.Read.BW + s.Write.BW) / 1024 * span
		if mib == 0 {
			return 0
		}
		return s.serverCPU / mib * 1e6
	}}
	all := []workload{
		{name: "nbdcopy to null:", metrics: []metric{mbs, cpuMiB}, run: runNbdcopy},
		{name: "seq read 256K QD16", args: []string{"--rw=read", "--bs=256k", "--iodepth=16"}, metrics: []metric{mbs, cpuMiB}},
		{name: "rand read 4K QD32 1 job", args: []string{"--rw=randread", "--bs=4k", "--iodepth=32"}, metrics: []metric{iops("read"), cpu}},
		{name: "rand read 4K QD32 4 jobs", args: []string{"--rw=randread", "--bs=4k", "--iodepth=32", "--numjobs=4"}, metrics: []metric{iops("read"), cpu}},
		{name: "rand write 4K QD32", args: []string{"--rw=randwrite", "--bs=4k", "--iodepth=32"}, metrics: []metric{iops("write"), cpu}, writes: true},
		{name: "latency 4K QD1", args: []string{"--rw=randread", "--bs=4k", "--iodepth=1"}, metrics: []metric{
			{"mean µs", "µs", false, func(s fioStats) float64 { return s.Read.Clat.Mean / 1000 }},
			{"p99 µs", "µs", false, func(s fioStats) float64 { return s.Read.Clat.Percentile["99.000000"] / 1000 }},
		}},
		{name: "32 clients QD4 4K rand read", args: []string{"--rw=randread", "--bs=4k", "--iodepth=4", "--numjobs=32"}, metrics: []metric{iops("read"), cpu}},
	}
	var out []workload
	for _, w := range all {
		if o.only != "" && !strings.Contains(w.name, o.only) || names != nil && !slices.Contains(names, w.name) || readOnly && w.writes {
			continue
		}
		if w.run == nil {
			w.args = append(append([]string{"--name=" + strings.ReplaceAll(w.name, " ", "_")}, common...), w.args...)
		}
		out = append(out, w)
	}
	return out
}

// runNbdcopy copies the whole export to null: with nbdcopy (which asks
// BLOCK_STATUS and skips holes), again and again for the run time, and
// reports the rate as read bandwidth.
func runNbdcopy(o options, uri string, limit time.Duration) (fioStats, error) {
	start := time.Now()
	var copies int
	for copies == 0 || time.Since(start) < o.runtime {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		out, err := exec.CommandContext(ctx, "nbdcopy", uri, "null:").CombinedOutput()
		cancel()
		if err != nil {
			return fioStats{}, fmt.Errorf("nbdcopy %s null: %w: %s", uri, err, strings.TrimSpace(string(out)))
		}
		copies++
	}
	secs := time.Since(start).Seconds()
	var st fioStats
	st.Read.IOBytes = int64(copies) * o.size
	st.Read.BW = float64(st.Read.IOBytes) / secs / 1024
	st.span = secs
	return st, nil
}

type fioDir struct {
	IOBytes int64   `json:"io_bytes"`
	IOPS    float64 `json:"iops"`
	BW      float64 `json:"bw"` // KiB/s
	Clat    struct {
		Mean       float64            `json:"mean"`
		Percentile map[string]float64 `json:"percentile"`
	} `json:"clat_ns"`
}

type fioStats struct {
	Read       fioDir `json:"read"`
	Write      fioDir `json:"write"`
	JobRuntime int64  `json:"job_runtime"` // ms
	// serverCPU is the server's CPU seconds over the run (set by
	// runRounds, not fio).
	serverCPU float64
	// span is the seconds the run took, warm-up included, when it is not
	// fio's runtime and ramp time (nbdcopy's copies).
	span float64
}

func (s fioStats) dir(d string) fioDir {
	if d == "write" {
		return s.Write
	}
	return s.Read
}

// runFio runs one workload against uri and returns fio's aggregate stats.
// A run that outlives limit (a server that stopped answering) is killed
// with all of fio's job processes.
func runFio(w workload, uri string, limit time.Duration) (fioStats, error) {
	// fio's job processes start sessions of their own, out of reach of a
	// process-group kill: a token in their command line finds them.
	fioRuns++
	token := fmt.Sprintf("--description=nbdbench-%d-%d", os.Getpid(), fioRuns)
	args := append(append([]string{token}, w.args...), "--uri="+uri)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "fio", args...)
	cmd.Cancel = func() error { killMatching(token); return nil }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return fioStats{}, fmt.Errorf("fio %q on %s: no result within %v (server hung?)", w.name, uri, limit)
	}
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return fioStats{}, fmt.Errorf("fio %q on %s: %w: %s", w.name, uri, err, msg)
	}
	jobs, err := parseFioJobs(out)
	if err != nil {
		return fioStats{}, fmt.Errorf("fio %q on %s: %w", w.name, uri, err)
	}
	return jobs[0], nil
}

// fioRuns numbers the fio runs of this process (one at a time).
var fioRuns int

// killMatching kills every process whose command line holds token.
func killMatching(token string) {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), token) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
