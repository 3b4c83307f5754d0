package main

import (
	"context"
	"encoding/json"
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

// workload is one fio job description run against every server.
type workload struct {
	name    string
	args    []string
	metrics []metric
}

// cowWorkloads are the workloads of the copy-on-write table.
var cowWorkloads = []string{"seq read 256K QD16", "rand read 4K QD32 1 job", "rand write 4K QD32"}

// workloads returns the fio workloads, those named in names if not nil.
func workloads(o options, names []string) []workload {
	secs := strconv.Itoa(int(o.runtime.Seconds()))
	common := []string{"--ioengine=nbd", "--direct=1", "--time_based", "--runtime=" + secs,
		"--ramp_time=1", "--group_reporting", "--output-format=json", "--size=" + strconv.FormatInt(o.size, 10)}
	iops := func(dir string) metric {
		return metric{dir + " IOPS", "k", true, func(s fioStats) float64 { return s.dir(dir).IOPS / 1000 }}
	}
	all := []workload{
		{"seq read 256K QD16", []string{"--rw=read", "--bs=256k", "--iodepth=16"},
			[]metric{{"MB/s", "MB/s", true, func(s fioStats) float64 { return s.Read.BW * 1024 / 1e6 }}}},
		{"rand read 4K QD32 1 job", []string{"--rw=randread", "--bs=4k", "--iodepth=32"}, []metric{iops("read")}},
		{"rand read 4K QD32 4 jobs", []string{"--rw=randread", "--bs=4k", "--iodepth=32", "--numjobs=4"}, []metric{iops("read")}},
		{"rand write 4K QD32", []string{"--rw=randwrite", "--bs=4k", "--iodepth=32"}, []metric{iops("write")}},
		{"latency 4K QD1", []string{"--rw=randread", "--bs=4k", "--iodepth=1"}, []metric{
			{"mean µs", "µs", false, func(s fioStats) float64 { return s.Read.Clat.Mean / 1000 }},
			{"p99 µs", "µs", false, func(s fioStats) float64 { return s.Read.Clat.Percentile["99.000000"] / 1000 }},
		}},
		{"32 clients 4K rand read", []string{"--rw=randread", "--bs=4k", "--iodepth=1", "--numjobs=32"}, []metric{iops("read")}},
	}
	var out []workload
	for _, w := range all {
		if o.only != "" && !strings.Contains(w.name, o.only) || names != nil && !slices.Contains(names, w.name) {
			continue
		}
		w.args = append(append([]string{"--name=" + strings.ReplaceAll(w.name, " ", "_")}, common...), w.args...)
		out = append(out, w)
	}
	return out
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
	// fio may print warnings before the JSON document.
	if i := strings.IndexByte(string(out), '{'); i > 0 {
		out = out[i:]
	}
	var doc struct {
		Jobs []fioStats `json:"jobs"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return fioStats{}, fmt.Errorf("parse fio output for %q on %s: %w", w.name, uri, err)
	}
	if len(doc.Jobs) == 0 {
		return fioStats{}, fmt.Errorf("fio %q on %s: no jobs in output", w.name, uri)
	}
	return doc.Jobs[0], nil
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
