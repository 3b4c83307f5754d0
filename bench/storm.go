package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The boot storm, as lab mornings look: o.storm clients connect within
// o.stormSpread to one copy-on-write export, each with a client ID of its
// own (its own overlay on nbdserve-cow; one diff file per connection on
// nbd-server's copyonwrite; one shared snapshot on qemu-nbd --snapshot),
// and replay a boot: small random reads (4K to 16K, a quarter of its
// reads, over the whole image: libraries and configuration, holes
// included), then larger sequential ones (256K, the rest, from an offset
// of its own in the data), then a few MiB of random writes (logs, state).
// The phases are fio jobs run one after the other (stonewall) in one fio
// process per client. A lone client's time, measured first each round, is
// what the slowest storm client is compared with. The server's CPU time
// over the storm and the clients' (each fio process's user and system
// time, its job processes' included) show who took the cores (beside the
// rest of the machine's busy time, "other", and its idle time), and give a
// floor: the slowest client's time could not be shorter than what all
// that CPU time takes spread perfectly over the cores (stormFloor), so
// floor / lone says what ratio the machine allows at all. The median
// client's time beside the slowest's, and how close together the clients
// ended, show whether some clients were served while others waited.

const (
	rowSlowest    = "slowest client s"
	rowMedian     = "median client s"
	rowEnds       = "clients end within s"
	rowLone       = "lone client s"
	rowRatio      = "slowest / lone"
	rowAggregate  = "aggregate MB/s"
	rowWall       = "wall clock s"
	rowCPU        = "server CPU s"
	rowLoneCPU    = "lone client CPU s"
	rowClientsCPU = "clients CPU s"
	rowOtherCPU   = "other CPU s"
	rowIdle       = "idle CPU s"
	rowFloor      = "CPU floor s"
	rowFloorRatio = "floor / lone"
)

// stormRounds runs a lone client then the storm on every server, round by
// round, rotating the order; every client uses a fresh ID (a fresh boot).
func stormRounds(o options, servers []*server) (*results, error) {
	res := &results{samples: map[string]map[string][]float64{}, rss: map[string]int64{}, failed: map[string]bool{},
		rows: []row{{key: rowSlowest}, {key: rowMedian}, {key: rowEnds}, {key: rowLone}, {key: rowRatio}, {key: rowAggregate, higher: true},
			{key: rowWall}, {key: rowCPU}, {key: rowLoneCPU}, {key: rowClientsCPU}, {key: rowOtherCPU}, {key: rowIdle}, {key: rowFloor}, {key: rowFloorRatio}}}
	cores := runtime.NumCPU()
	for _, r := range res.rows {
		res.samples[r.key] = map[string][]float64{}
	}
	for r := 0; r < o.rounds; r++ {
		for i := range servers {
			s := servers[(i+r)%len(servers)]
			settle()
			lone, err := stormRun(o, s, fmt.Sprintf("lone-r%d", r), 1)
			if err != nil {
				return nil, err
			}
			settle()
			cpu := s.cpu()
			before, err := readMachineTimes()
			if err != nil {
				return nil, err
			}
			st, err := stormRun(o, s, fmt.Sprintf("r%d", r), o.storm)
			if err != nil {
				return nil, err
			}
			cpu = s.cpu() - cpu
			after, err := readMachineTimes()
			if err != nil {
				return nil, err
			}
			machine := after.since(before)
			add := func(key string, v float64) { res.samples[key][s.name] = append(res.samples[key][s.name], v) }
			floor := stormFloor(cpu+st.clientsCPU, cores, st.lastStart, lone.slowest)
			add(rowSlowest, st.slowest)
			add(rowMedian, st.median)
			add(rowEnds, st.endSpread)
			add(rowLone, lone.slowest)
			add(rowRatio, st.slowest/lone.slowest)
			add(rowAggregate, st.aggMBs)
			add(rowWall, st.wall)
			add(rowCPU, cpu)
			add(rowLoneCPU, lone.clientsCPU)
			add(rowClientsCPU, st.clientsCPU)
			add(rowOtherCPU, max(machine.busy-cpu-st.clientsCPU, 0))
			add(rowIdle, machine.idle)
			add(rowFloor, floor)
			add(rowFloorRatio, floor/lone.slowest)
		}
		fmt.Fprintf(os.Stderr, "bench: round %d/%d: boot storm done\n", r+1, o.rounds)
	}
	return res, nil
}

// bootArgs is client n's fio jobs, reading and writing uri.
func bootArgs(o options, n int, uri string) []string {
	small := o.stormRead / 4
	seq := o.stormRead - small
	data := o.size / 2 // the sparse image's data
	seqOff := int64(n) * (64 << 20) % max(data-seq, 1) &^ (1<<20 - 1)
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []string{"--ioengine=nbd", "--uri=" + uri, "--direct=1", "--group_reporting", "--output-format=json", "--iodepth=8",
		"--randseed=" + strconv.Itoa(1000+n),
		"--name=small", "--rw=randread", "--bsrange=4k-16k", "--size=" + i64(o.size), "--io_size=" + i64(small),
		"--name=seq", "--stonewall", "--rw=read", "--bs=256k", "--offset=" + i64(seqOff), "--size=" + i64(seq),
		"--name=write", "--stonewall", "--rw=randwrite", "--bsrange=4k-64k", "--size=" + i64(o.size), "--io_size=" + i64(o.stormWrite)}
}

type stormResult struct {
	slowest, median, aggMBs, wall float64
	// endSpread is the seconds between the first client's end and the
	// last's: short when the server shared itself evenly, long when some
	// clients were served while others waited.
	endSpread float64
	// clientsCPU is the fio processes' CPU seconds (user and system,
	// their reaped job processes' included); lastStart the seconds from
	// the storm's start to the last client's.
	clientsCPU, lastStart float64
}

// stormFloor is the shortest the slowest client's time could be if cpu
// seconds of work (all the clients' and the server's) were spread
// perfectly over cores: the work cannot end before cpu/cores, and the
// client that ends last started at most lastStart in; nor can any client
// be faster than a lone one.
func stormFloor(cpu float64, cores int, lastStart, lone float64) float64 {
	return max(cpu/float64(max(cores, 1))-lastStart, lone)
}

// stormRun starts n clients spread over o.stormSpread (at once when n is
// 1) and waits for all: the slowest and the median client's time from its
// own start to its end, the aggregate throughput over the wall time, the
// wall time, the clients' CPU time.
func stormRun(o options, s *server, round string, n int) (stormResult, error) {
	limit := 5 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	type client struct {
		out, errs bytes.Buffer
		took      time.Duration
		end       time.Duration // from the storm's start
		cpu       float64       // user and system seconds, job processes included
		err       error
	}
	clients := make([]client, n)
	var r stormResult
	if n > 1 {
		r.lastStart = (o.stormSpread * time.Duration(n-1) / time.Duration(n)).Seconds()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		c := &clients[i]
		at := time.Duration(0)
		if n > 1 {
			at = o.stormSpread * time.Duration(i) / time.Duration(n)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(start.Add(at))) // the client's boot time, not a wait for a result
			uri := s.clientURI(fmt.Sprintf("pc%02d-%s", i+1, round))
			cmd := exec.CommandContext(ctx, "fio", bootArgs(o, i, uri)...)
			cmd.Stdout, cmd.Stderr = &c.out, &c.errs
			t := time.Now()
			c.err = cmd.Run()
			c.took = time.Since(t)
			c.end = time.Since(start)
			if ps := cmd.ProcessState; ps != nil {
				c.cpu = (ps.UserTime() + ps.SystemTime()).Seconds()
			}
		}()
	}
	wg.Wait()
	r.wall = time.Since(start).Seconds()
	if ctx.Err() != nil {
		return r, fmt.Errorf("boot storm on %s: clients still running after %v (server hung?)", s.name, limit)
	}
	var total int64
	took, ends := make([]float64, 0, n), make([]float64, 0, n)
	for i, c := range clients {
		if c.err != nil {
			return r, fmt.Errorf("boot storm on %s: client %d: fio: %w: %s", s.name, i+1, c.err, strings.TrimSpace(c.errs.String()))
		}
		jobs, err := parseFioJobs(c.out.Bytes())
		if err != nil {
			return r, fmt.Errorf("boot storm on %s: client %d: %w", s.name, i+1, err)
		}
		for _, st := range jobs { // one per phase (stonewall)
			total += st.Read.IOBytes + st.Write.IOBytes
		}
		took = append(took, c.took.Seconds())
		ends = append(ends, c.end.Seconds())
		r.clientsCPU += c.cpu
	}
	r.slowest, r.median = slices.Max(took), median(took)
	r.endSpread = slices.Max(ends) - slices.Min(ends)
	r.aggMBs = float64(total) / r.wall / 1e6
	return r, nil
}

// parseFioJobs decodes fio's JSON output (after any warnings) into the
// stats of its jobs (of its groups, with group_reporting).
func parseFioJobs(out []byte) ([]fioStats, error) {
	if i := bytes.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	var doc struct {
		Jobs []fioStats `json:"jobs"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("parse fio output: %w", err)
	}
	if len(doc.Jobs) == 0 {
		return nil, fmt.Errorf("fio output: no jobs")
	}
	return doc.Jobs, nil
}

// writersDuring returns the cow table's background: o.writers clients,
// each writing 4K blocks at random into its own overlay (on the plain
// nbdserve, into its own disk, o.ownDisks; on servers that have one
// export for all, into that), at a boot-like 500 writes a second each,
// from before the measurement until stop.
func writersDuring(o options) func(s *server) (stop func()) {
	return func(s *server) func() {
		if o.writers == 0 {
			return func() {}
		}
		token := fmt.Sprintf("--description=nbdbench-writers-%d-%d", os.Getpid(), time.Now().UnixNano())
		var cmds []*exec.Cmd
		for i := range o.writers {
			args := []string{token, "--name=writer", "--ioengine=nbd", "--direct=1", "--rw=randwrite", "--bs=4k",
				"--iodepth=4", "--rate_iops=500", "--time_based", "--runtime=3600", "--size=" + strconv.FormatInt(o.size, 10),
				"--uri=" + s.clientURI(writerID(i))}
			cmd := exec.Command("fio", args...)
			if err := cmd.Start(); err != nil {
				fmt.Fprintf(os.Stderr, "bench: start writer: %v\n", err)
				continue
			}
			cmds = append(cmds, cmd)
		}
		return func() {
			killMatching(token)
			for _, c := range cmds {
				c.Wait()
			}
		}
	}
}

// writerID is the client ID of the cow table's writer i (from 0).
func writerID(i int) string { return fmt.Sprintf("writer%d", i+1) }
