// Command bench runs the same fio workloads against nbdserve and its peers
// (nbd-server, nbdkit's file plugin, qemu-nbd) serving the same file,
// interleaved round by round with the order rotated, and prints tables of
// medians with each peer's ratio to nbdserve.
//
// The images (-images): "dense", a fully allocated file, and "sparse", the
// same size with data in its first half and a hole in the second, as the
// images labs serve are (mkfs.ext4 -d into a truncated file, a converted
// VM disk). The tables (-sections):
//
//   - peers: nbdserve vs its peers, once per image (workloads that write
//     are left out on the sparse image, which they would fill);
//   - cow: nbdserve's copy-on-write export (a client's own overlay) over
//     the sparse base, its plain export (of a copy), nbd-server's
//     copyonwrite and qemu-nbd --snapshot, while -writers other clients
//     write into their overlays;
//   - storm: the boot storm, -storm clients connecting within -storm-spread
//     to the copy-on-write servers, each reading a boot's pattern of the
//     sparse base (small random reads, then larger sequential ones) and
//     writing a few MiB: the slowest client's time against a lone
//     client's, the aggregate throughput, and the CPU time the clients
//     and the server used, with the floor it sets on the slowest client.
//
// Server CPU per request is read from /proc (user and system time of the
// server's process and of its children, running or reaped). It is `make bench`; it is not
// a test.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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
	cowPeers []string
	only     string
	images   []string
	sections map[string]bool
	writers  int
	// ownDisks are the cow table's writers' own plain disks (writer ID
	// to image), served by the plain nbdserve beside the measured one.
	ownDisks    map[string]string
	storm       int
	stormSpread time.Duration
	stormRead   int64
	stormWrite  int64
}

func run() error {
	var o options
	var peers, cowPeers, sections, images string
	flag.StringVar(&o.nbdserve, "nbdserve", "build/bin/nbdserve", "path of the nbdserve binary")
	flag.StringVar(&o.dir, "dir", "", "directory for the served files (default: a temporary directory)")
	o.size, o.stormRead, o.stormWrite = 4<<30, 64<<20, 4<<20
	flag.Var((*byteSize)(&o.size), "size", "size of each served file (bytes, or with K, M, G)")
	flag.DurationVar(&o.runtime, "runtime", 5*time.Second, "duration of each fio run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each round runs every workload on every server")
	flag.StringVar(&peers, "peers", "nbdserve,nbd-server,nbdkit,qemu-nbd", "servers to compare, nbdserve first")
	flag.StringVar(&cowPeers, "cow-peers", "nbdserve-cow,nbdserve,nbd-server-cow,qemu-nbd-snapshot",
		"copy-on-write servers to compare, nbdserve-cow first (nbdserve: the plain export)")
	flag.StringVar(&o.only, "only", "", "run only workloads whose name contains this")
	flag.StringVar(&images, "images", "dense,sparse", "images of the peers table: dense, sparse")
	flag.StringVar(&sections, "sections", "peers,cow,storm",
		"tables to produce: peers (nbdserve vs peers), cow (copy-on-write exports), storm (clients booting at once)")
	flag.IntVar(&o.writers, "writers", 3, "clients writing into their overlays during the cow table")
	flag.IntVar(&o.storm, "storm", 30, "clients booting in the storm table")
	flag.DurationVar(&o.stormSpread, "storm-spread", time.Second, "the storm's clients connect within this time")
	flag.Var((*byteSize)(&o.stormRead), "storm-read", "bytes each storm client reads (K, M, G allowed)")
	flag.Var((*byteSize)(&o.stormWrite), "storm-write", "bytes each storm client writes (K, M, G allowed)")
	flag.Parse()
	o.peers = strings.Split(peers, ",")
	if o.peers[0] != "nbdserve" {
		return fmt.Errorf("-peers must start with nbdserve, got %q", peers)
	}
	o.cowPeers = strings.Split(cowPeers, ",")
	if o.cowPeers[0] != "nbdserve-cow" {
		return fmt.Errorf("-cow-peers must start with nbdserve-cow, got %q", cowPeers)
	}
	o.images = strings.Split(images, ",")
	for _, im := range o.images {
		if im != "dense" && im != "sparse" {
			return fmt.Errorf("-images: unknown image %q (known: dense, sparse)", im)
		}
	}
	o.sections = map[string]bool{}
	for _, sec := range strings.Split(sections, ",") {
		switch sec {
		case "peers", "cow", "storm":
			o.sections[sec] = true
		default:
			return fmt.Errorf("-sections: unknown section %q (known: peers, cow, storm)", sec)
		}
	}
	switch {
	case o.storm < 1:
		return fmt.Errorf("-storm: %d clients, want >= 1", o.storm)
	case o.size < 16<<20 || o.size%(1<<20) != 0:
		return fmt.Errorf("-size: %d, want a multiple of 1 MiB, at least 16 MiB", o.size)
	}
	for _, tool := range []string{"fio", "nbdcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s: %w (run `make deps`)", tool, err)
		}
	}
	if o.dir == "" {
		d, err := os.MkdirTemp("", "nbdbench")
		if err != nil {
			return fmt.Errorf("create bench directory: %w", err)
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	sparse := filepath.Join(o.dir, "sparse.img")
	if o.sections["cow"] || o.sections["storm"] || slices.Contains(o.images, "sparse") {
		if err := makeImage(sparse, o.size, o.size/2); err != nil {
			return err
		}
	}
	if o.sections["peers"] {
		for _, im := range o.images {
			path := sparse
			if im == "dense" {
				path = filepath.Join(o.dir, "dense.img")
				if err := makeImage(path, o.size, o.size); err != nil {
					return err
				}
			}
			ws := workloads(o, nil, im == "sparse")
			err := compare(o, "nbdserve vs peers, "+im+" image", o.peers, imageFor(path, nil),
				func(ss []*server) (*results, error) { return runRounds(o, ss, ws, nil) })
			os.Remove(filepath.Join(o.dir, "dense.img"))
			if err != nil {
				return err
			}
		}
	}
	if o.sections["cow"] {
		// The plain export serves a copy: the write workload would
		// otherwise fill the base's hole. Like the overlays, each
		// writer has a disk of its own there too (what a lab without
		// copy-on-write gives each machine), so the measured client's
		// disk is written by nobody else on either export.
		plain := filepath.Join(o.dir, "plain.img")
		if err := copySparse(sparse, plain); err != nil {
			return err
		}
		co := o
		co.ownDisks = map[string]string{}
		for i := range o.writers {
			id := writerID(i)
			co.ownDisks[id] = filepath.Join(o.dir, id+".img")
			if err := copySparse(sparse, co.ownDisks[id]); err != nil {
				return err
			}
		}
		ws := workloads(co, cowWorkloads, false)
		title := fmt.Sprintf("copy-on-write over the sparse image, %d other clients writing into their overlays (plain: their own disks)", o.writers)
		err := compare(co, title, o.cowPeers, imageFor(sparse, map[string]string{"nbdserve": plain}),
			func(ss []*server) (*results, error) { return runRounds(co, ss, ws, writersDuring(co)) })
		if err != nil {
			return err
		}
	}
	if o.sections["storm"] {
		title := fmt.Sprintf("boot storm: %d clients within %v on one copy-on-write export of the sparse image, each reading %d MiB and writing %d MiB",
			o.storm, o.stormSpread, o.stormRead>>20, o.stormWrite>>20)
		var peers []string
		for _, p := range o.cowPeers {
			if p != "nbdserve" { // the storm is copy-on-write only
				peers = append(peers, p)
			}
		}
		err := compare(o, title, peers, imageFor(sparse, nil), func(ss []*server) (*results, error) { return stormRounds(o, ss) })
		if err != nil {
			return err
		}
	}
	return nil
}

// imageFor is the file each server serves: path, unless other names one.
func imageFor(path string, other map[string]string) func(name string) string {
	return func(name string) string {
		if p, ok := other[name]; ok {
			return p
		}
		return path
	}
}

// compare starts peers over their images, measures them with measure,
// prints a table and stops them.
func compare(o options, title string, peers []string, image func(string) string, measure func([]*server) (*results, error)) error {
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

// byteSize is a flag of bytes, with an optional K, M or G (powers of 1024).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(v string) error {
	shift := 0
	switch {
	case strings.HasSuffix(v, "K"):
		shift = 10
	case strings.HasSuffix(v, "M"):
		shift = 20
	case strings.HasSuffix(v, "G"):
		shift = 30
	}
	n, err := strconv.ParseInt(strings.TrimRight(v, "KMG"), 10, 64)
	if err != nil || n < 0 || n > 1<<(62-shift) {
		return fmt.Errorf("%q: want bytes, or a number with K, M or G", v)
	}
	*b = byteSize(n << shift)
	return nil
}
