package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// results holds every sample: row key -> server -> samples.
type results struct {
	rows    []row
	samples map[string]map[string][]float64
	rss     map[string]int64
	failed  map[string]bool // "workload/server" whose fio run failed
}

type row struct {
	key      string
	workload string
	higher   bool
}

// runRounds runs every workload on every server, round by round, rotating
// the order of the servers each round so that none always goes first.
// during, if set, starts what runs beside each measurement (background
// clients) and returns its stop function.
func runRounds(o options, servers []*server, ws []workload, during func(s *server) (stop func())) (*results, error) {
	res := &results{samples: map[string]map[string][]float64{}, rss: map[string]int64{}, failed: map[string]bool{}}
	for _, w := range ws {
		for _, m := range w.metrics {
			res.rows = append(res.rows, row{w.name + ": " + m.name, w.name, m.higher})
		}
	}
	for r := 0; r < o.rounds; r++ {
		for _, w := range ws {
			for i := range servers {
				s := servers[(i+r)%len(servers)]
				settle()
				stop := func() {}
				if during != nil {
					stop = during(s)
				}
				cpu := s.cpu()
				st, err := w.measure(o, s.clientURI("fio"), o.runtime+time.Minute)
				st.serverCPU = s.cpu() - cpu
				stop()
				if err != nil {
					// One peer failing a workload (nbd-server has hung
					// with 32 clients here) must not lose the others' rows.
					fmt.Fprintf(os.Stderr, "bench: %v\n", err)
					res.failed[w.name+"/"+s.name] = true
					continue
				}
				for _, m := range w.metrics {
					key := w.name + ": " + m.name
					if res.samples[key] == nil {
						res.samples[key] = map[string][]float64{}
					}
					res.samples[key][s.name] = append(res.samples[key][s.name], m.get(st))
				}
			}
			fmt.Fprintf(os.Stderr, "bench: round %d/%d: %s done\n", r+1, o.rounds, w.name)
		}
	}
	return res, nil
}

// settle writes back the dirty data earlier measurements left (their
// writes, the background writers'), so that no server's measurement pays
// for another's: the plain export's write-back is the kernel's, up to
// 30 s later, while a copy-on-write overlay is synced when it is closed,
// 5 s after its last client left, in whichever measurement runs then.
func settle() { syscall.Sync() }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// printTable prints medians and each peer's ratio to the first of peers
// (nbdserve, or nbdserve-cow). A ratio below 1 on a higher-is-better row
// (or above 1 on a latency or memory row) means nbdserve is ahead.
func printTable(w io.Writer, o options, title string, peers []string, res *results) {
	first := peers[0]
	fmt.Fprintf(w, "%s, %s, %d cores, %s, %d rounds of %v each, median; (x) = peer / %s\n",
		title, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), "loopback", o.rounds, o.runtime, first)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "workload\t%s\t\n", strings.Join(peers, "\t"))
	for _, r := range res.rows {
		base := median(res.samples[r.key][first])
		cells := []string{r.key}
		for _, p := range peers {
			if len(res.samples[r.key][p]) == 0 && res.failed[r.workload+"/"+p] {
				cells = append(cells, "failed")
				continue
			}
			m := median(res.samples[r.key][p])
			if p == first || base == 0 {
				cells = append(cells, fmt.Sprintf("%.1f", m))
				continue
			}
			cells = append(cells, fmt.Sprintf("%.1f (%.2fx)", m, m/base))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	base := float64(res.rss[first])
	cells := []string{"peak held memory MiB"}
	for _, p := range peers {
		v := float64(res.rss[p])
		if p == first || base <= 0 {
			cells = append(cells, fmt.Sprintf("%.1f", v/1024))
			continue
		}
		cells = append(cells, fmt.Sprintf("%.1f (%.2fx)", v/1024, v/base))
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	tw.Flush()
}
