// Command bench runs the same fio workloads against nbdserve and its peers
// (nbd-server, nbdkit's file plugin, qemu-nbd) serving the same file,
// interleaved round by round, and prints a table of medians with each
// peer's ratio to nbdserve. It is `make bench`; it is not a test.
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
	nbdserve string
	dir      string
	size     int64
	runtime  time.Duration
	rounds   int
	peers    []string
	only     string
}

func run() error {
	var o options
	var peers string
	flag.StringVar(&o.nbdserve, "nbdserve", "build/bin/nbdserve", "path of the nbdserve binary")
	flag.StringVar(&o.dir, "dir", "", "directory for the served file (default: a temporary directory)")
	flag.Int64Var(&o.size, "size", 1<<30, "size of the served file in bytes")
	flag.DurationVar(&o.runtime, "runtime", 5*time.Second, "duration of each fio run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each round runs every workload on every server")
	flag.StringVar(&peers, "peers", "nbdserve,nbd-server,nbdkit,qemu-nbd", "servers to compare, nbdserve first")
	flag.StringVar(&o.only, "only", "", "run only workloads whose name contains this")
	flag.Parse()
	o.peers = strings.Split(peers, ",")
	if o.peers[0] != "nbdserve" {
		return fmt.Errorf("-peers must start with nbdserve, got %q", peers)
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
	servers, err := startServers(o, image)
	defer stopServers(servers)
	if err != nil {
		return err
	}
	res, err := runRounds(o, servers, workloads(o))
	if err != nil {
		return err
	}
	for _, s := range servers {
		res.rss[s.name] = s.peakRSS()
	}
	printTable(os.Stdout, o, res)
	return nil
}
