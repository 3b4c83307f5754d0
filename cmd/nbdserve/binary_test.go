package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// Tests of the nbdserve binary as a separate process, checked with
// clients nobody here wrote (nbdsh, nbdcopy).

// nbdserveBin is the binary TestMain built (or $NBDSERVE_BIN).
var nbdserveBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if bin := os.Getenv("NBDSERVE_BIN"); bin != "" {
		nbdserveBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "nbdserve-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	nbdserveBin = filepath.Join(dir, "nbdserve")
	out, err := exec.Command("go", "build", "-o", nbdserveBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build nbdserve: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// proc is a running nbdserve whose log lines can be waited for.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string

	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced when a line arrives
	ended bool
}

var servingRE = regexp.MustCompile(`msg=serving addr=(\S+)`)

// startServer runs nbdserve with args (after -listen 127.0.0.1:0 -debug)
// and waits until it serves.
func startServer(t *testing.T, args ...string) *proc {
	t.Helper()
	return startCommand(t, exec.Command(nbdserveBin, append([]string{"-listen", "127.0.0.1:0", "-debug"}, args...)...))
}

// startCommand runs cmd, an nbdserve command line with -debug, and waits
// until it serves.
func startCommand(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, more: make(chan struct{})}
	go p.read(stderr)
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() {
			t.Logf("nbdserve log:\n%s", p.log())
		}
	})
	m := p.waitLine(servingRE)
	p.addr = m[1]
	return p
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		close(p.more)
		p.more = make(chan struct{})
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.ended = true
	close(p.more)
	p.mu.Unlock()
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLine waits for a log line matching re after those already
// consumed by earlier waits and returns its submatches.
func (p *proc) waitLine(re *regexp.Regexp) []string {
	p.t.Helper()
	deadline := time.After(30 * time.Second)
	for i := 0; ; {
		p.mu.Lock()
		for ; i < len(p.lines); i++ {
			if m := re.FindStringSubmatch(p.lines[i]); m != nil {
				p.lines[i] = "(seen) " + p.lines[i]
				p.mu.Unlock()
				return m
			}
		}
		more, ended := p.more, p.ended
		p.mu.Unlock()
		if ended {
			p.t.Fatalf("nbdserve exited before logging %q", re)
		}
		select {
		case <-more:
		case <-deadline:
			p.t.Fatalf("nbdserve did not log %q", re)
		}
	}
}

// kill9 kills the server with SIGKILL and waits for it to be gone.
func (p *proc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *proc) uri(export string) string { return "nbd://" + p.addr + "/" + export }

// tool runs a client tool and returns its stdout.
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	path := testutil.RequireTool(t, name)
	cmd := exec.Command(path, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin:"+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// nbdshHeld runs an nbdsh script that prints "ready" when done and then
// keeps its connections open until the returned function is called.
func nbdshHeld(t *testing.T, script string) (release func()) {
	t.Helper()
	path := testutil.RequireTool(t, "nbdsh")
	cmd := exec.Command(path, "-c", script+"\nprint('ready', flush=True)\nimport sys\nsys.stdin.readline()\n")
	cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin:"+os.Getenv("PATH"))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("nbdsh: %q, %v\n%s", line, err, stderr.String())
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			stdin.Close()
			cmd.Wait() // fails when the server is gone: that is fine here
		})
	}
	t.Cleanup(release)
	return release
}

// randomImage writes size bytes of seeded random data to path.
func randomImage(t *testing.T, path string, size int, seed uint64) []byte {
	t.Helper()
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	r.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha(path string) [32]byte {
	b, _ := os.ReadFile(path)
	return sha256.Sum256(b)
}

// TestKill9KeepsFlushedWrites: a client writes and flushes A, writes B
// without flushing, and while it is still connected nbdserve is killed
// with SIGKILL and restarted. A real client then reads A back; each 4K
// block of B reads as before or as B; every other byte is as it was, and
// a cow export's base file is untouched. For a plain export, a cow one
// (ephemeral, still inside its grace period at the restart) and a
// persistent cow one.
func TestKill9KeepsFlushedWrites(t *testing.T) {
	testutil.RequireTool(t, "nbdsh")
	testutil.RequireTool(t, "nbdcopy")
	for _, tt := range []struct{ name, opts, export string }{
		{"plain", "", "disk"},
		{"cow", ",cow", "disk/pc1"},
		{"cow-persistent", ",cow=persistent", "disk/pc1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "disk.img")
			const size = 8 << 20
			orig := randomImage(t, img, size, 1)
			baseSum := sha256.Sum256(orig)
			args := []string{"-state", filepath.Join(dir, "state"), "disk=" + img + tt.opts}
			srv := startServer(t, args...)
			const offA, offB, n = 1<<20 + 512, 3 << 20, 64 << 10 // A is not block-aligned
			nbdshHeld(t, fmt.Sprintf(`h.connect_uri(%q)
h.pwrite(b'\xa5' * %d, %d)
h.flush()
h.pwrite(b'\xb6' * %d, %d)`, srv.uri(tt.export), n, offA, n, offB))
			srv.kill9()

			srv = startServer(t, args...)
			out := filepath.Join(dir, "out.img")
			tool(t, "nbdcopy", srv.uri(tt.export), out)
			got, err := os.ReadFile(out)
			if err != nil || len(got) != size {
				t.Fatalf("read back %d bytes, %v", len(got), err)
			}
			want := append([]byte(nil), orig...)
			copy(want[offA:offA+n], bytes.Repeat([]byte{0xa5}, n))
			if !bytes.Equal(got[offA:offA+n], want[offA:offA+n]) {
				t.Error("the flushed write is lost")
			}
			for b := offB; b < offB+n; b += 4096 {
				if blk := got[b : b+4096]; !bytes.Equal(blk, orig[b:b+4096]) && !bytes.Equal(blk, bytes.Repeat([]byte{0xb6}, 4096)) {
					t.Errorf("unflushed block at %d reads neither as before nor as written", b)
				}
				copy(want[b:b+4096], got[b:b+4096])
			}
			if !bytes.Equal(got, want) {
				for i := range got {
					if got[i] != want[i] {
						t.Errorf("byte %d changed: %#x, want %#x", i, got[i], want[i])
						break
					}
				}
			}
			if tt.opts != "" && sha(img) != baseSum {
				t.Error("the base image changed")
			}
		})
	}
}

// TestTwoConnectionsAndReconnect: two nbdsh handles of one client see
// each other's flushed writes at once (multi-conn), a reconnect sees
// both, and another client sees the base.
func TestTwoConnectionsAndReconnect(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "base.img")
	randomImage(t, img, 4<<20, 2)
	srv := startServer(t, "-state", filepath.Join(dir, "state"), "lab="+img+",cow")
	out := tool(t, "nbdsh", "-c", fmt.Sprintf(`
import nbd
uri, other = %q, %q
h1, h2 = nbd.NBD(), nbd.NBD()
h1.connect_uri(uri)
h2.connect_uri(uri)
assert h1.can_multi_conn() and not h1.is_read_only()
base = h1.pread(8192, 4096)
h1.pwrite(b'\x11' * 4096, 4096)
h1.flush()
assert h2.pread(4096, 4096) == b'\x11' * 4096, "h2 does not see h1's write"
h2.pwrite(b'\x22' * 4096, 8192, nbd.CMD_FLAG_FUA)
assert h1.pread(4096, 8192) == b'\x22' * 4096, "h1 does not see h2's write"
h1.shutdown()
h3 = nbd.NBD()
h3.connect_uri(uri)
assert h3.pread(8192, 4096) == b'\x11' * 4096 + b'\x22' * 4096, "the reconnect lost writes"
o = nbd.NBD()
o.connect_uri(other)
assert o.pread(8192, 4096) == base, "another client sees pc1's writes"
print("ok")
`, srv.uri("lab/52:54:00:12:34:56"), srv.uri("lab/52:54:00:12:34:57")))
	if strings.TrimSpace(out) != "ok" {
		t.Errorf("nbdsh: %q", out)
	}
}

// TestQuotaWithNbdsh: a write past the overlay's quota fails with ENOSPC
// at a real client and the server logs it.
func TestQuotaWithNbdsh(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "base.img")
	randomImage(t, img, 4<<20, 3)
	srv := startServer(t, "-state", filepath.Join(dir, "state"), "lab="+img+",cow,quota=64K")
	out := tool(t, "nbdsh", "-u", srv.uri("lab/pc1"), "-c", `
import errno
h.pwrite(b'\x33' * 65536, 0)
try:
    h.pwrite(b'\x44' * 4096, 1 << 20)
    print("no error")
except nbd.Error as e:
    print("ENOSPC" if e.errno in (errno.ENOSPC, "ENOSPC") else "errno %r" % e.errno)
assert h.pread(4096, 1 << 20) != b'\x44' * 4096
`)
	if strings.TrimSpace(out) != "ENOSPC" {
		t.Errorf("write past the quota: %s", out)
	}
	srv.waitLine(regexp.MustCompile(`overlay quota reached.*export=lab client=pc1.*quota=65536`))
}

// TestControlCommands drives `nbdserve overlays` and `nbdserve reset`
// against a running server.
func TestControlCommands(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "base.img")
	randomImage(t, img, 1<<20, 4)
	sock := filepath.Join(dir, "ctl.sock")
	srv := startServer(t, "-state", filepath.Join(dir, "state"), "-control", sock, "lab="+img+",cow", "keep="+img+",cow=persistent")
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, %v", st, err)
	}
	tool(t, "nbdsh", "-u", srv.uri("lab/pc1"), "-c", "h.pwrite(b'x' * 8192, 0); h.flush()")
	srv.waitLine(regexp.MustCompile(`msg="export released" .*export=lab/pc1`))
	release := nbdshHeld(t, fmt.Sprintf("h.connect_uri(%q)\nh.pwrite(b'y' * 4096, 0)", srv.uri("keep/pc2")))

	ctl := func(args ...string) (string, error) {
		cmd := exec.Command(nbdserveBin, args...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := ctl("overlays", "-control", sock)
	if err != nil {
		t.Fatalf("overlays: %v\n%s", err, out)
	}
	row := regexp.MustCompile(`(?m)^(\S+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(\S+)$`)
	var rows []string
	for _, m := range row.FindAllStringSubmatch(out, -1) {
		if _, err := time.Parse(time.RFC3339, m[4]); err != nil {
			t.Errorf("last use %q: %v", m[4], err)
		}
		rows = append(rows, strings.Join([]string{m[1], m[2], m[3], m[5], m[6]}, " "))
	}
	if got := strings.Join(rows, "\n"); got != "keep pc2 4096 1 persistent\nlab pc1 8192 0 ephemeral" {
		t.Errorf("overlays:\n%s", out)
	}
	if out, err := ctl("reset", "-control", sock, "keep", "pc2"); err == nil || !strings.Contains(out, "overlay in use") {
		t.Errorf("reset of a connected overlay: %v\n%s", err, out)
	}
	if out, err := ctl("reset", "-control", sock, "lab"); err != nil || strings.TrimSpace(out) != "reset 1 overlays" {
		t.Errorf("reset lab: %v\n%s", err, out)
	}
	release()
	srv.waitLine(regexp.MustCompile(`msg="export released" .*export=keep/pc2`))
	if out, err := ctl("reset", "-control", sock, "keep", "pc2"); err != nil || strings.TrimSpace(out) != "reset 1 overlays" {
		t.Errorf("reset keep pc2: %v\n%s", err, out)
	}
	if out, err := ctl("overlays", "-control", sock); err != nil || strings.Count(out, "\n") != 1 {
		t.Errorf("overlays after the resets: %v\n%s", err, out)
	}
	if out, err := ctl("overlays", "-control", filepath.Join(dir, "nope.sock")); err == nil || !strings.Contains(out, "control socket") {
		t.Errorf("overlays on a missing socket: %v\n%s", err, out)
	}
}

// TestSIGHUPBinary: SIGHUP to the binary adds an export and removes one
// for new connections while an existing connection keeps working.
func TestSIGHUPBinary(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	randomImage(t, a, 1<<20, 5)
	randomImage(t, b, 2<<20, 6)
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte("[[export]]\nname = \"a\"\npath = \""+a+"\"\n"), 0o644)
	srv := startServer(t, "-config", cfg)
	// An nbdsh connection to a, held open across the reload, then used.
	script := fmt.Sprintf(`
import sys
h.connect_uri(%q)
h.pwrite(b'\x77' * 4096, 0)
print('ready', flush=True)
sys.stdin.readline()
h.pwrite(b'\x78' * 4096, 4096)
h.flush()
assert h.pread(8192, 0) == b'\x77' * 4096 + b'\x78' * 4096
print('still ok', flush=True)
`, srv.uri("a"))
	cmd := exec.Command(testutil.RequireTool(t, "nbdsh"), "-c", script)
	cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin:"+os.Getenv("PATH"))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	br := bufio.NewReader(stdout)
	if l, err := br.ReadString('\n'); l != "ready\n" {
		t.Fatalf("nbdsh: %q %v\n%s", l, err, stderr.String())
	}

	os.WriteFile(cfg, []byte("[[export]]\nname = \"b\"\npath = \""+b+"\"\n"), 0o644)
	srv.cmd.Process.Signal(syscall.SIGHUP)
	srv.waitLine(regexp.MustCompile(`msg=reloaded opened=\[b\] retired=\[a\]`))

	io.WriteString(stdin, "go\n")
	if l, err := br.ReadString('\n'); l != "still ok\n" {
		t.Errorf("existing connection after SIGHUP: %q %v\n%s", l, err, stderr.String())
	}
	stdin.Close()
	cmd.Wait()
	if out := tool(t, "nbdsh", "-u", srv.uri("b"), "-c", "print(h.get_size())"); strings.TrimSpace(out) != "2097152" {
		t.Errorf("new export b: size %s", out)
	}
	check := exec.Command(testutil.RequireTool(t, "nbdsh"), "-u", srv.uri("a"), "-c", "print(h.get_size())")
	check.Env = append(os.Environ(), "PATH=/usr/bin:/bin:"+os.Getenv("PATH"))
	if out, err := check.CombinedOutput(); err == nil {
		t.Errorf("removed export a still served to a new connection: %s", out)
	}
	if got, _ := os.ReadFile(a); !bytes.Equal(got[:8192], append(bytes.Repeat([]byte{0x77}, 4096), bytes.Repeat([]byte{0x78}, 4096)...)) {
		t.Error("the writes of the connection that outlived the reload are not in a.img")
	}
}
