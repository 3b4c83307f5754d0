package main

import (
	"bufio"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// server is one running NBD server under test.
type server struct {
	name string
	uri  string
	pid  int
	cmd  *exec.Cmd
	log  *os.File
	// perClient: the export name carries a client ID (NAME/CLIENT), each
	// client getting its own copy-on-write overlay.
	perClient bool
	// own lists the clients with an export of their own (named by
	// their ID) beside the one measured.
	own   map[string]string
	image string // the file served
	mem   *memSampler
}

// clientURI is the URI client id uses: its own overlay on nbdserve-cow,
// its own export if it has one, else the one export.
func (s *server) clientURI(id string) string {
	if s.perClient {
		return s.uri + "/" + id
	}
	if _, ok := s.own[id]; ok {
		return strings.TrimSuffix(s.uri, exportName) + id
	}
	return s.uri
}

const exportName = "bench"

// serverCommand returns the command line that serves image on port.
func serverCommand(o options, name, image string, port int) ([]string, error) {
	p := strconv.Itoa(port)
	switch name {
	case "nbdserve":
		argv := []string{o.nbdserve, "-listen", "127.0.0.1:" + p, exportName + "=" + image}
		for _, id := range slices.Sorted(maps.Keys(o.ownDisks)) {
			argv = append(argv, id+"="+o.ownDisks[id])
		}
		return argv, nil
	case "nbdserve-cow":
		// Ephemeral overlays, one per client, under a state directory of
		// their own; clients ask for bench/CLIENT-ID. Every client comes
		// from 127.0.0.1, so the per-address and creation-rate caps (meant
		// for a lab's many addresses) are lifted.
		state := filepath.Join(o.dir, "nbdserve-state")
		conf := filepath.Join(o.dir, name+".toml")
		text := fmt.Sprintf("listen = %q\nstate_dir = %q\n\n[[export]]\nname = %q\npath = %q\ncow = \"ephemeral\"\n"+
			"max_overlays_per_address = 100000\nnew_overlays_per_minute = 1000000\n", "127.0.0.1:"+p, state, exportName, image)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", conf, err)
		}
		return []string{o.nbdserve, "-config", conf}, nil
	case "nbd-server", "nbd-server-cow":
		conf := filepath.Join(o.dir, name+".conf")
		text := fmt.Sprintf("[generic]\n  listenaddr = 127.0.0.1\n  port = %s\n  allowlist = true\n[%s]\n  exportname = %s\n", p, exportName, image)
		if name == "nbd-server-cow" {
			text += "  copyonwrite = true\n" // a diff file per connection, next to the image
		}
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", conf, err)
		}
		// nbd-server's -d serves one connection only: let it daemonize and
		// find it through its pid file.
		return []string{"nbd-server", "-C", conf, "-p", filepath.Join(o.dir, name+".pid")}, nil
	case "nbdkit":
		return []string{"nbdkit", "-f", "-i", "127.0.0.1", "-p", p, "file", "file=" + image}, nil
	case "qemu-nbd":
		return []string{"qemu-nbd", "-f", "raw", "-x", exportName, "-b", "127.0.0.1", "-p", p, "-t", "-e", "64", image}, nil
	case "qemu-nbd-snapshot":
		// One temporary qcow2 overlay, shared by every client.
		return []string{"qemu-nbd", "-f", "raw", "-x", exportName, "-b", "127.0.0.1", "-p", p, "-t", "-e", "64", "--snapshot", image}, nil
	}
	return nil, fmt.Errorf("unknown peer %q (known: nbdserve, nbdserve-cow, nbd-server, nbd-server-cow, nbdkit, qemu-nbd, qemu-nbd-snapshot)", name)
}

// startServers starts peers, each serving image(name).
func startServers(o options, peers []string, image func(name string) string) ([]*server, error) {
	var out []*server
	for i, name := range peers {
		port, err := freePort()
		if err != nil {
			return out, err
		}
		argv, err := serverCommand(o, name, image(name), port)
		if err != nil {
			return out, err
		}
		if _, err := exec.LookPath(argv[0]); err != nil {
			return out, fmt.Errorf("start %s: %w (run `make deps build`)", name, err)
		}
		logf, err := os.Create(filepath.Join(o.dir, fmt.Sprintf("%d-%s.log", i, name)))
		if err != nil {
			return out, fmt.Errorf("create log for %s: %w", name, err)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return out, fmt.Errorf("start %s: %w", name, err)
		}
		s := &server{name: name, uri: fmt.Sprintf("nbd://127.0.0.1:%d/%s", port, exportName), pid: cmd.Process.Pid, cmd: cmd, log: logf,
			perClient: name == "nbdserve-cow", image: image(name)}
		if name == "nbdserve" {
			s.own = o.ownDisks
		}
		out = append(out, s)
		if err := waitListening(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second); err != nil {
			return out, fmt.Errorf("start %s: %w (log: %s)", name, err, logf.Name())
		}
		if strings.HasPrefix(name, "nbd-server") {
			if err := cmd.Wait(); err != nil {
				return out, fmt.Errorf("start %s: %w (log: %s)", name, err, logf.Name())
			}
			pid, err := readPid(filepath.Join(o.dir, name+".pid"))
			if err != nil {
				return out, fmt.Errorf("start %s: %w", name, err)
			}
			s.pid, s.cmd = pid, nil
		}
		s.mem = startMemSampler(s.pid)
	}
	return out, nil
}

func stopServers(ss []*server) {
	for _, s := range ss {
		if s.mem != nil {
			s.mem.Stop()
		}
		if p, err := os.FindProcess(s.pid); err == nil {
			p.Kill()
		}
		if s.cmd != nil {
			s.cmd.Wait()
		}
		s.log.Close()
	}
}

// peakRSS is the peak of the memory the server held, in KiB (memSampler:
// its anonymous and shared-memory pages; -1 if unknown).
func (s *server) peakRSS() int64 {
	if s.mem == nil {
		return -1
	}
	return s.mem.Peak()
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse pid file %s: %w", path, err)
	}
	return pid, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening dials addr until it answers or the deadline passes.
func waitListening(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v: %w", addr, limit, err)
		}
		<-t.C
	}
}

// cpu is the server's CPU time so far in seconds: user and system time
// of its process, of the children it has reaped and of those still
// running or not yet reaped (nbd-server serves each client from a forked
// process, which a measurement must count while it runs: its background
// writers' children never end before the measurement does, and the
// measured client's may not yet have been reaped), from /proc/PID/stat.
func (s *server) cpu() float64 {
	return float64(treeTicks(s.pid, 0)) / clockTicks
}

// treeTicks sums the CPU ticks of process pid (with its reaped children's)
// and of its live descendants, to a depth of 4.
func treeTicks(pid, depth int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	ticks := statTicks(b)
	if depth >= 4 {
		return ticks
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		c, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(c)) {
			if child, err := strconv.Atoi(f); err == nil {
				ticks += treeTicks(child, depth+1)
			}
		}
	}
	return ticks
}

// statTicks is utime + stime + cutime + cstime of a /proc/PID/stat.
func statTicks(stat []byte) int64 {
	// The fields after the command name (which may hold spaces) in
	// parentheses: state is field 3, utime 14, stime 15, cutime 16,
	// cstime 17.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, v := range f[11:15] {
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return ticks
}

// clockTicks is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTicks = 100

// makeImage writes a file of size bytes whose first data bytes are
// random-looking data (so that reads hit real data on every server) and
// whose rest is a hole.
func makeImage(path string, size, data int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create image %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var x uint64 = 0x9e3779b97f4a7c15
	for i := range buf {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		buf[i] = byte(x)
	}
	w := bufio.NewWriterSize(f, 4<<20)
	for off := int64(0); off < data; off += int64(len(buf)) {
		buf[0], buf[1] = byte(off>>20), byte(off>>28)
		if _, err := w.Write(buf[:min(int64(len(buf)), data-off)]); err != nil {
			return fmt.Errorf("write image %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write image %s: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("size image %s: %w", path, err)
	}
	return f.Sync()
}

// copySparse copies an image, holes kept.
func copySparse(from, to string) error {
	if out, err := exec.Command("cp", "--sparse=always", from, to).CombinedOutput(); err != nil {
		return fmt.Errorf("copy %s to %s: %w: %s", from, to, err, strings.TrimSpace(string(out)))
	}
	return nil
}
