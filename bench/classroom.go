package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The classroom table: o.classroom clients start booting the same image
// at once, each a fio process with a client ID of its own (its own
// overlay on nbdserve-cow; one diff file per connection on nbd-server's
// copyonwrite; one shared snapshot on qemu-nbd --snapshot). They replay
// the same boot-like pattern (same random seed): reads of 4K to 128K,
// 70% at zipf-distributed random offsets (a boot's hot libraries and
// binaries) and 30% sequential, with 5% writes (logs, state), 4 in flight.

const (
	rowAggregate = "aggregate MB/s"
	rowSlowest   = "slowest client s"
	rowWall      = "wall clock s"
)

// classroomRounds runs the classroom on every server, round by round,
// rotating the order; a round's clients use fresh IDs (a fresh boot).
func classroomRounds(o options, servers []*server) (*results, error) {
	res := &results{samples: map[string]map[string][]float64{}, rss: map[string]int64{},
		rows: []row{{key: rowAggregate, higher: true}, {key: rowSlowest}, {key: rowWall}}, failed: map[string]bool{}}
	for _, r := range res.rows {
		res.samples[r.key] = map[string][]float64{}
	}
	for r := 0; r < o.rounds; r++ {
		for i := range servers {
			s := servers[(i+r)%len(servers)]
			agg, slowest, wall, err := classroomRun(o, s, r)
			if err != nil {
				return nil, err
			}
			res.samples[rowAggregate][s.name] = append(res.samples[rowAggregate][s.name], agg)
			res.samples[rowSlowest][s.name] = append(res.samples[rowSlowest][s.name], slowest)
			res.samples[rowWall][s.name] = append(res.samples[rowWall][s.name], wall)
		}
		fmt.Fprintf(os.Stderr, "bench: round %d/%d: classroom done\n", r+1, o.rounds)
	}
	return res, nil
}

// bootArgs is one client's fio job, without its URI.
func bootArgs(o options) []string {
	return []string{"--name=boot", "--ioengine=nbd", "--direct=1", "--rw=randrw", "--rwmixread=95",
		"--bsrange=4k-128k", "--percentage_random=70", "--random_distribution=zipf:1.2", "--randseed=1234",
		"--iodepth=4", "--size=" + strconv.FormatInt(o.size, 10), "--io_size=" + strconv.FormatInt(o.classroomIO, 10),
		"--output-format=json"}
}

// classroomRun starts every client at once and waits for all: the
// aggregate throughput over the wall time, the slowest client's own run
// time, and the wall time.
func classroomRun(o options, s *server, round int) (aggMBs, slowest, wall float64, err error) {
	cmds := make([]*exec.Cmd, o.classroom)
	outs := make([]bytes.Buffer, o.classroom)
	errs := make([]bytes.Buffer, o.classroom)
	start := time.Now()
	for i := range cmds {
		uri := s.clientURI(fmt.Sprintf("pc%02d-r%d", i+1, round))
		cmds[i] = exec.Command("fio", append(bootArgs(o), "--uri="+uri)...)
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &errs[i]
		if err := cmds[i].Start(); err != nil {
			for _, c := range cmds[:i] {
				c.Process.Kill()
				c.Wait()
			}
			return 0, 0, 0, fmt.Errorf("classroom on %s: start fio: %w", s.name, err)
		}
	}
	var total int64
	var firstErr error
	for i, c := range cmds {
		if err := c.Wait(); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("classroom on %s: client %d: fio: %w: %s", s.name, i+1, err, strings.TrimSpace(errs[i].String()))
		}
	}
	wall = time.Since(start).Seconds()
	if firstErr != nil {
		return 0, 0, 0, firstErr
	}
	for i := range cmds {
		st, err := parseFio(outs[i].Bytes())
		if err != nil {
			return 0, 0, 0, fmt.Errorf("classroom on %s: client %d: %w", s.name, i+1, err)
		}
		total += st.Read.IOBytes + st.Write.IOBytes
		slowest = max(slowest, float64(st.JobRuntime)/1000)
	}
	return float64(total) / wall / 1e6, slowest, wall, nil
}

// parseFio decodes fio's JSON output (after any warnings) into the
// first job's stats.
func parseFio(out []byte) (fioStats, error) {
	if i := bytes.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	var doc struct {
		Jobs []fioStats `json:"jobs"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return fioStats{}, fmt.Errorf("parse fio output: %w", err)
	}
	if len(doc.Jobs) == 0 {
		return fioStats{}, fmt.Errorf("fio output: no jobs")
	}
	return doc.Jobs[0], nil
}
