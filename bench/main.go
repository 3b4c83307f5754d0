// Command bench runs the same fio workloads against nbdserve and its peers
// (nbd-server, nbdkit's file plugin, qemu-nbd) serving the same file,
// interleaved round by round, and prints a table of medians with each
// peer's ratio to nbdserve. A second table compares nbdserve's
// copy-on-write export (a client's own overlay) with its plain export,
// nbd-server's copyonwrite and qemu-nbd --snapshot on the read and write
// workloads; a third has -classroom clients (fio processes, 30 by default)
// boot at once from each copy-on-write server, replaying one boot-like
// read pattern, and reports the aggregate throughput and the slowest
// client's time. -sections picks the tables. It is `make bench`; it is
// not a test.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	if err := run(); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

type options struct {
	nbdserve    string
	dir         string
	size        int64
	runtime     time.Duration
	rounds      int
	peers       []string
	cowPeers    []string
	only        string
	sections    map[string]bool
	classroom   int
	classroomIO int64
}

func run() error {
	var o options
	var peers, cowPeers, sections string
	flag.StringVar(&o.nbdserve, "nbdserve", "build/bin/nbdserve", "path of the nbdserve binary")
	flag.StringVar(&o.dir, "dir", "", "directory for the served file (default: a temporary directory)")
	flag.Int64Var(&o.size, "size", 1<<30, "size of the served file in bytes")
	flag.DurationVar(&o.runtime, "runtime", 5*time.Second, "duration of each fio run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each round runs every workload on every server")
	flag.StringVar(&peers, "peers", "nbdserve,nbd-server,nbdkit,qemu-nbd", "servers to compare, nbdserve first")
	flag.StringVar(&cowPeers, "cow-peers", "nbdserve-cow,nbdserve,nbd-server-cow,qemu-nbd-snapshot",
		"copy-on-write servers to compare, nbdserve-cow first (nbdserve: the plain export)")
	flag.StringVar(&o.only, "only", "", "run only workloads whose name contains this")
	flag.StringVar(&sections, "sections", "peers,cow,classroom",
		"tables to produce: peers (nbdserve vs peers), cow (copy-on-write exports), classroom (clients booting at once)")
	flag.IntVar(&o.classroom, "classroom", 30, "clients booting at once in the classroom table")
	flag.Int64Var(&o.classroomIO, "classroom-io", 32<<20, "bytes each classroom client reads and writes")
	flag.Parse()
	o.peers = strings.Split(peers, ",")
	if o.peers[0] != "nbdserve" {
		return fmt.Errorf("-peers must start with nbdserve, got %q", peers)
	}
	o.cowPeers = strings.Split(cowPeers, ",")
	if o.cowPeers[0] != "nbdserve-cow" {
		return fmt.Errorf("-cow-peers must start with nbdserve-cow, got %q", cowPeers)
	}
	o.sections = map[string]bool{}
	for _, sec := range strings.Split(sections, ",") {
		switch sec {
		case "peers", "cow", "classroom":
			o.sections[sec] = true
		default:
			return fmt.Errorf("-sections: unknown section %q (known: peers, cow, classroom)", sec)
		}
	}
	if o.classroom < 1 {
		return fmt.Errorf("-classroom: %d clients, want >= 1", o.classroom)
	}
	if _, err := exec.LookPath("fio"); err != nil {
		return fmt.Errorf("fio: %w (run `make deps`)", err)
	}
	if o.dir == "" {
		d, err := os.MkdirTemp("", "nbdbench")
		if err != nil {
			return fmt.Errorf("create bench directory: %w", err)
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	image := filepath.Join(o.dir, "disk.img")
	if err := makeImage(image, o.size); err != nil {
		return err
	}
	if o.sections["peers"] {
		ws := workloads(o, nil)
		err := compare(o, "nbdserve vs peers", o.peers, image, func(ss []*server) (*results, error) { return runRounds(o, ss, ws) })
		if err != nil {
			return err
		}
	}
	if o.sections["cow"] {
		ws := workloads(o, cowWorkloads)
		err := compare(o, "copy-on-write: nbdserve cow export vs its plain export and peers' copy-on-write", o.cowPeers, image,
			func(ss []*server) (*results, error) { return runRounds(o, ss, ws) })
		if err != nil {
			return err
		}
	}
	if o.sections["classroom"] {
		title := fmt.Sprintf("classroom: %d clients booting at once, %d MiB each", o.classroom, o.classroomIO>>20)
		err := compare(o, title, o.cowPeers, image, func(ss []*server) (*results, error) { return classroomRounds(o, ss) })
		if err != nil {
			return err
		}
	}
	return nil
}

// compare starts peers over image, measures them with measure, prints
// a table and stops them.
func compare(o options, title string, peers []string, image string, measure func([]*server) (*results, error)) error {
	servers, err := startServers(o, peers, image)
	defer stopServers(servers)
	if err != nil {
		return err
	}
	res, err := measure(servers)
	if err != nil {
		return err
	}
	for _, s := range servers {
		res.rss[s.name] = s.peakRSS()
	}
	printTable(os.Stdout, o, title, peers, res)
	fmt.Println()
	return nil
}
