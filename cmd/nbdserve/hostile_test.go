package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
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
	"github.com/nbdboot/nbdboot/protocol"
)

// The hostile-client suite: each attack a student with root on a lab
// machine could make, run against the nbdserve binary, while a
// well-behaved client on another connection, from another address, keeps
// reading. Every READ of the well-behaved client must be answered, with
// the right bytes, within a second while the attack goes on. Where the
// address matters, an attack runs twice: on loopback (the attacker at
// 127.0.0.1, the others at 127.0.0.2 and .3) and in the namespace lab
// (hostile_lab_test.go: the server, the attacker and the others each in a
// network namespace of their own on one bridge, as machines on a LAN).

// hostileBaseSize is the size of the suite's images: large enough for
// 32 MiB requests.
const hostileBaseSize = 64 << 20

// hostileImage writes a sparse image with a known first MiB and returns
// its path and that MiB.
func hostileImage(t *testing.T) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "base.img")
	head := randomImage(t, path, 1<<20, 7)
	if err := os.Truncate(path, hostileBaseSize); err != nil {
		t.Fatal(err)
	}
	return path, head
}

// startHostile serves the image as "disk" (writable), "ro" and "lab"
// (ephemeral copy-on-write) with short deadlines, and args, on loopback.
func startHostile(t *testing.T, args ...string) (*proc, []byte) {
	t.Helper()
	return startHostileOn(t, loopback, args...)
}

// startHostileOn is startHostile on network n.
func startHostileOn(t *testing.T, n hostileNet, args ...string) (*proc, []byte) {
	t.Helper()
	path, head := hostileImage(t)
	ro := filepath.Join(t.TempDir(), "ro.img")
	if err := os.WriteFile(ro, head, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(ro, hostileBaseSize); err != nil {
		t.Fatal(err)
	}
	all := append([]string{"-state", t.TempDir(), "-stall-timeout", "1s", "-reply-timeout", "2s",
		"-shutdown-grace", "1s"}, args...)
	all = append(all, "disk="+path, "ro="+ro+",ro", "lab="+ro+",cow")
	return n.start(t, all...), head
}

// nbdConn is a raw NBD client that can misbehave on purpose.
type nbdConn struct {
	nc     net.Conn
	br     *bufio.Reader
	cookie uint64
}

// dialFrom connects from from and negotiates export with simple replies.
func dialFrom(t *testing.T, addr string, from origin, export string) *nbdConn {
	t.Helper()
	c, err := tryDialFrom(addr, from, export)
	if err != nil {
		t.Fatalf("connect from %s to %q: %v", from, export, err)
	}
	t.Cleanup(func() { c.nc.Close() })
	return c
}

func tryDialFrom(addr string, from origin, export string) (*nbdConn, error) {
	nc, err := rawDial(addr, from)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := protocol.ClientHandshake(nc, protocol.ClientOptions{Export: export}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	nc.SetDeadline(time.Time{})
	return &nbdConn{nc: nc, br: bufio.NewReader(nc)}, nil
}

// rawDial opens a TCP connection from from.
func rawDial(addr string, from origin) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if from.ip != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from.ip)}
	}
	if from.ns == nil {
		return d.Dial("tcp", addr)
	}
	var nc net.Conn
	err := from.ns.Do(func() error {
		var err error
		nc, err = d.Dial("tcp", addr)
		return err
	})
	return nc, err
}

// send writes a request header and any payload bytes given.
func (c *nbdConn) send(typ uint16, off uint64, length uint32, payload []byte) error {
	c.cookie++
	req := protocol.Request{Type: typ, Cookie: c.cookie, Offset: off, Length: length}
	_, err := c.nc.Write(append(protocol.AppendRequest(nil, req), payload...))
	return err
}

// reply reads a simple reply; a READ's data (n bytes) when it succeeded.
func (c *nbdConn) reply(n int) ([]byte, error) {
	var hb [protocol.ChunkHeaderSize]byte
	h, err := protocol.ReadReplyHeader(c.br, hb[:])
	if err != nil {
		return nil, err
	}
	if h.Errno != 0 {
		return nil, fmt.Errorf("errno %d", h.Errno)
	}
	data := make([]byte, n)
	_, err = io.ReadFull(c.br, data)
	return data, err
}

// read reads n bytes at off within timeout.
func (c *nbdConn) read(off uint64, n int, timeout time.Duration) ([]byte, error) {
	c.nc.SetDeadline(time.Now().Add(timeout))
	defer c.nc.SetDeadline(time.Time{})
	if err := c.send(protocol.CmdRead, off, uint32(n), nil); err != nil {
		return nil, err
	}
	return c.reply(n)
}

// write writes p at off (and waits for the reply) within timeout.
func (c *nbdConn) write(off uint64, p []byte, timeout time.Duration) error {
	c.nc.SetDeadline(time.Now().Add(timeout))
	defer c.nc.SetDeadline(time.Time{})
	if err := c.send(protocol.CmdWrite, off, uint32(len(p)), p); err != nil {
		return err
	}
	_, err := c.reply(0)
	return err
}

// expectDropped fails the test unless the server closes every one of the
// attackers' connections within 20 s.
func expectDropped(t *testing.T, attackers []*nbdConn) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i, a := range attackers {
		if !a.closedBy(deadline) {
			t.Errorf("attacker %d still connected", i)
		}
	}
}

// closedBy reports whether the server closes the connection by deadline
// (whatever it still sends is dropped).
func (c *nbdConn) closedBy(deadline time.Time) bool {
	c.nc.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, c.br)
	return err == nil || !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// watcher is the well-behaved client: it reads the known first MiB
// again and again until stopped, and records any READ that failed,
// returned the wrong bytes or took a second or more.
type watcher struct {
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	reads int
	errs  []error
}

// watch starts the well-behaved client on export from from.
func watch(t *testing.T, p *proc, from origin, export string, head []byte) *watcher {
	t.Helper()
	c := dialFrom(t, p.addr, from, export)
	w := &watcher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := uint64(0); ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			off := (i * 4096) % uint64(len(head))
			start := time.Now()
			got, err := c.read(off, 4096, time.Second)
			w.mu.Lock()
			w.reads++
			switch {
			case err != nil:
				w.errs = append(w.errs, fmt.Errorf("READ at %d after %v: %w", off, time.Since(start), err))
			case !bytes.Equal(got, head[off:off+4096]):
				w.errs = append(w.errs, fmt.Errorf("READ at %d: wrong bytes", off))
			}
			failed := err != nil
			w.mu.Unlock()
			if failed {
				return
			}
			select { // a READ every 20 ms, a machine's steady trickle
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return w
}

// check stops the watcher and fails the test if a READ went wrong or
// too few were made.
func (w *watcher) check(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, err := range w.errs {
		t.Errorf("well-behaved client: %v", err)
	}
	if w.reads < 5 {
		t.Errorf("well-behaved client made only %d READs", w.reads)
	}
}

// during runs the well-behaved client (from n.victim) while the attack
// lasts, for at least d (so the attack holds its resources meanwhile).
func during(t *testing.T, n hostileNet, p *proc, head []byte, export string, d time.Duration) func() {
	w := watch(t, p, n.victim, export, head)
	start := time.Now()
	return func() {
		t.Helper()
		if rest := d - time.Since(start); rest > 0 {
			<-time.After(rest)
		}
		w.check(t)
	}
}

// TestHostileStalledWrites: 8 connections each send a WRITE header for
// 32 MiB and one byte of payload, then nothing. The other client's READs
// are answered meanwhile, the stalled connections are dropped after the
// stall timeout, and a WRITE made before the attack is still there.
func TestHostileStalledWrites(t *testing.T) { eachNet(t, hostileStalledWrites) }

func hostileStalledWrites(t *testing.T, n hostileNet) {
	p, head := startHostileOn(t, n)
	mine := bytes.Repeat([]byte{0xA5}, 4096)
	good := dialFrom(t, p.addr, n.victim, "disk")
	if err := good.write(2<<20, mine, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	done := during(t, n, p, head, "disk", 1500*time.Millisecond)
	var attackers []*nbdConn
	for range 8 {
		a := dialFrom(t, p.addr, n.attacker, "disk")
		if err := a.send(protocol.CmdWrite, 4<<20, 32<<20, []byte{1}); err != nil {
			t.Fatal(err)
		}
		attackers = append(attackers, a)
	}
	done()
	expectDropped(t, attackers)
	if got, err := good.read(2<<20, 4096, time.Second); err != nil || !bytes.Equal(got, mine) {
		t.Errorf("the well-behaved client's write: %v", err)
	}
	if got, err := good.read(4<<20, 4096, time.Second); err != nil || !bytes.Equal(got, make([]byte, 4096)) {
		t.Errorf("a stalled WRITE changed the disk: %v", err)
	}
}

// TestHostileUnreadReplies: one connection sends eight 32 MiB READs and
// never reads the replies; then another does the same. The other client's
// READs are answered meanwhile and the attackers are dropped after the
// reply timeout.
func TestHostileUnreadReplies(t *testing.T) {
	p, head := startHostile(t)
	done := during(t, loopback, p, head, "ro", 2500*time.Millisecond)
	for range 2 {
		a := dialFrom(t, p.addr, loopback.attacker, "ro")
		for i := range 8 {
			if err := a.send(protocol.CmdRead, uint64(i%2)*(32<<20), 32<<20, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	done()
	// Reading the replies now would let them leave: the log says when
	// each attacker was dropped instead.
	for range 2 {
		p.waitLine(regexp.MustCompile(`write reply failed; closing.* client=127\.0\.0\.1:`))
	}
}

// TestHostileUnreadLentReplies: on a copy-on-write export, large READs
// of blocks the client wrote are lent from the overlay's mappings with
// the blocks' read locks held until the reply has left. A client that
// sends many and never reads them holds its own overlay's locks only:
// another machine's overlay is served meanwhile, the attacker is dropped
// at the reply timeout, and the locks come back (its own second
// connection then writes the same block).
func TestHostileUnreadLentReplies(t *testing.T) {
	p, head := startHostile(t)
	a := dialFrom(t, p.addr, loopback.attacker, "lab")
	own := dialFrom(t, p.addr, loopback.attacker, "lab") // the same overlay
	if err := a.write(0, bytes.Repeat([]byte{0x5c}, 4096), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	done := during(t, loopback, p, head, "lab", 2500*time.Millisecond)
	for range 64 {
		if err := a.send(protocol.CmdRead, 0, 1<<20, nil); err != nil {
			t.Fatal(err)
		}
	}
	done()
	p.waitLine(regexp.MustCompile(`write reply failed; closing.* client=127\.0\.0\.1:`))
	mine := bytes.Repeat([]byte{0xc5}, 4096)
	if err := own.write(0, mine, 5*time.Second); err != nil {
		t.Fatalf("write to the blocks the dropped connection had lent: %v", err)
	}
	got, err := own.read(0, 4096, 5*time.Second)
	if err != nil || !bytes.Equal(got, mine) {
		t.Fatalf("read back after the lend ended: %v", err)
	}
}

// TestHostileShutdownHalfPayload: SIGTERM while a WRITE's payload is
// half sent and another client stopped reading its replies: nbdserve
// still exits within the shutdown grace (and a margin).
func TestHostileShutdownHalfPayload(t *testing.T) {
	p, _ := startHostile(t, "-stall-timeout", "60s", "-reply-timeout", "60s")
	a := dialFrom(t, p.addr, loopback.attacker, "disk")
	if err := a.send(protocol.CmdWrite, 0, 1<<20, make([]byte, 512<<10)); err != nil {
		t.Fatal(err)
	}
	b := dialFrom(t, p.addr, origin{ip: "127.0.0.3"}, "ro")
	for range 4 {
		if err := b.send(protocol.CmdRead, 0, 32<<20, nil); err != nil {
			t.Fatal(err)
		}
	}
	p.waitLine(regexp.MustCompile(`msg=connected .*client=127.0.0.3`))
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("nbdserve after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nbdserve did not exit within 10 s of SIGTERM")
	}
}

// freshRead connects from from, negotiates export and reads the known
// first 4 KiB, all within a second.
func freshRead(addr string, from origin, export string, head []byte) error {
	start := time.Now()
	c, err := tryDialFrom(addr, from, export)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	got, err := c.read(0, 4096, time.Second)
	switch {
	case err != nil:
		return err
	case !bytes.Equal(got, head[:4096]):
		return fmt.Errorf("wrong bytes")
	case time.Since(start) >= time.Second:
		return fmt.Errorf("connect and READ took %v", time.Since(start))
	}
	return nil
}

// flood keeps n connections from each of froms open that send nothing,
// or one byte a second with slow, reopening each the server closes, until
// stop is closed; its WaitGroup is done once they are all closed.
func flood(addr string, froms []origin, n int, slow bool, stop chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range n * len(froms) {
		from := froms[i%len(froms)]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				nc, err := rawDial(addr, from)
				if err != nil {
					continue
				}
				go func() { <-stop; nc.Close() }()
				if slow { // the greeting's client flags, a byte a second
					for range 4 {
						select {
						case <-stop:
						case <-time.After(time.Second):
							nc.Write([]byte{0})
						}
					}
				}
				io.Copy(io.Discard, nc) // until the server closes it
				nc.Close()
			}
		})
	}
	return &wg
}

// TestHostileNegotiationFlood: one address keeps 100 connections in the
// handshake (silent ones, then slow ones), reconnecting each the server
// drops. Machines at other addresses still connect and read within a
// second, and the log grows by at most a few lines a second.
func TestHostileNegotiationFlood(t *testing.T) {
	eachNet(t, func(t *testing.T, n hostileNet) {
		hostileNegotiationFlood(t, n, []origin{n.attacker}, 100)
	})
}

// hostileNegotiationFlood floods from each of froms with per connections,
// while n.others connect and read.
func hostileNegotiationFlood(t *testing.T, n hostileNet, froms []origin, per int) {
	p, head := startHostileOn(t, n, "-handshake-timeout", "30s")
	for _, slow := range []bool{false, true} {
		stop := make(chan struct{})
		wg := flood(p.addr, froms, per, slow, stop)
		// Let the flood fill the slots and churn.
		p.waitLine(regexp.MustCompile(`refused: too many connections negotiating|handshake cut off`))
		before := len(p.log())
		for i := range 10 {
			from := n.others[i%len(n.others)]
			if err := freshRead(p.addr, from, "ro", head); err != nil {
				t.Errorf("slow=%v: client %d from %s during the flood: %v", slow, i, from, err)
			}
			<-time.After(100 * time.Millisecond)
		}
		grown := len(p.log()) - before
		close(stop)
		wg.Wait()
		if grown > 100<<10 {
			t.Errorf("slow=%v: the log grew by %d bytes in about a second of the flood", slow, grown)
		}
	}
}

// TestHostileOverlayTheft: while a machine uses its overlay, another
// address asking for the same ID (its MAC), or for the machine's address
// as ID (what plain NAME gives that machine), is refused at the
// handshake; the owner still reads what it wrote.
func TestHostileOverlayTheft(t *testing.T) { eachNet(t, hostileOverlayTheft) }

func hostileOverlayTheft(t *testing.T, n hostileNet) {
	p, head := startHostileOn(t, n)
	const mac = "lab/52:54:00:12:34:56"
	owner := dialFrom(t, p.addr, n.victim, mac)
	mine := bytes.Repeat([]byte{0x3c}, 4096)
	if err := owner.write(8192, mine, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	plain := dialFrom(t, p.addr, n.victim, "lab")
	if err := plain.write(8192, mine, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	done := during(t, n, p, head, "ro", 300*time.Millisecond)
	for _, name := range []string{mac, "lab/" + n.victim.ip, "lab/::ffff:" + n.victim.ip} {
		if c, err := tryDialFrom(p.addr, n.attacker, name); err == nil || !strings.Contains(err.Error(), "ERR_POLICY") {
			if c != nil {
				c.nc.Close()
			}
			t.Errorf("%s from another address: %v, want ERR_POLICY", name, err)
		}
	}
	done()
	for _, c := range []*nbdConn{owner, plain} {
		if got, err := c.read(8192, 4096, time.Second); err != nil || !bytes.Equal(got, mine) {
			t.Errorf("the owner's overlay after the attempts: %v", err)
		}
	}
}

// TestHostileOverlayFlood: one address invents client IDs as fast as it
// can. Past the caps (overlays it uses at once, overlays made a minute)
// it is refused at the handshake with ERR_POLICY, never after GO; the
// export keeps few overlays, and a machine at another address still
// gets its own overlay and its READs.
func TestHostileOverlayFlood(t *testing.T) { eachNet(t, hostileOverlayFlood) }

func hostileOverlayFlood(t *testing.T, n hostileNet) {
	p, head := startHostileOn(t, n)
	done := during(t, n, p, head, "ro", 500*time.Millisecond)
	var held []*nbdConn
	made, refused := 0, 0
	for i := range 200 {
		c, err := tryDialFrom(p.addr, n.attacker, fmt.Sprintf("lab/id%d", i))
		switch {
		case err == nil:
			made++
			held = append(held, c) // keep it in use
		case strings.Contains(err.Error(), "ERR_POLICY"):
			refused++
		default:
			t.Fatalf("id %d: %v, want success or ERR_POLICY", i, err)
		}
	}
	done()
	if made > 4 || refused != 200-made {
		t.Errorf("made %d overlays, refused %d", made, refused)
	}
	mine := dialFrom(t, p.addr, n.victim, "lab/52:54:00:00:00:02")
	if got, err := mine.read(0, 4096, time.Second); err != nil || !bytes.Equal(got, head[:4096]) {
		t.Errorf("another machine's overlay during the flood: %v", err)
	}
	for _, c := range held {
		c.nc.Close()
	}
}

// TestHostileShrunkBase: the base image of a read-only export and of a
// copy-on-write export is truncated while served (after a client learnt
// its map). nbdinfo --map and nbdcopy then fail on both, instead of
// reporting "hole, zero" and copying zeroes for what was cut off; a READ
// of what is left still answers.
func TestHostileShrunkBase(t *testing.T) {
	path, head := hostileImage(t)
	p := startServer(t, "-state", t.TempDir(), "ro="+path+",ro", "lab="+path+",cow")
	uris := []string{"nbd://" + p.addr + "/ro", "nbd://" + p.addr + "/lab/52:54:00:00:00:07"}
	nbdinfo, nbdcopy := testutil.RequireTool(t, "nbdinfo"), testutil.RequireTool(t, "nbdcopy")
	for _, u := range uris {
		if out, err := exec.Command(nbdinfo, "--map", u).CombinedOutput(); err != nil {
			t.Fatalf("nbdinfo --map %s before the truncation: %v\n%s", u, err, out)
		}
	}
	if err := os.Truncate(path, hostileBaseSize/2); err != nil {
		t.Fatal(err)
	}
	for _, u := range uris {
		for _, args := range [][]string{{nbdinfo, "--map", u}, {nbdcopy, u, "null:"}} {
			if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err == nil {
				t.Errorf("%s: exit 0 over a truncated base:\n%s", strings.Join(args, " "), out)
			}
		}
		export := strings.TrimPrefix(u, "nbd://"+p.addr+"/")
		c := dialFrom(t, p.addr, loopback.attacker, export)
		if got, err := c.read(0, 4096, time.Second); err != nil || !bytes.Equal(got, head[:4096]) {
			t.Errorf("%s: READ of what is left: %v", export, err)
		}
		if _, err := c.read(hostileBaseSize-4096, 4096, time.Second); err == nil || !strings.Contains(err.Error(), "errno 5") {
			t.Errorf("%s: READ of what was cut off: %v, want errno 5 (EIO)", export, err)
		}
	}
}

// TestHostileRewrittenBase: the base image is rewritten in place while
// served (same size, new modification time). A READ of it, large and in
// the page cache (sent from the file's mapping otherwise), fails with EIO
// on the read-only export and on an overlay, instead of mixing old and
// new content.
func TestHostileRewrittenBase(t *testing.T) {
	path, head := hostileImage(t)
	p := startServer(t, "-state", t.TempDir(), "ro="+path+",ro", "lab="+path+",cow")
	exports := []string{"ro", "lab/52:54:00:00:00:08"}
	for _, e := range exports {
		c := dialFrom(t, p.addr, loopback.victim, e)
		if got, err := c.read(0, 256<<10, time.Second); err != nil || !bytes.Equal(got, head[:256<<10]) {
			t.Fatalf("%s: READ before the change: %v", e, err)
		}
		c.nc.Close()
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	for _, e := range exports {
		c := dialFrom(t, p.addr, loopback.victim, e)
		if _, err := c.read(0, 256<<10, time.Second); err == nil || !strings.Contains(err.Error(), "errno 5") {
			t.Errorf("%s: READ after the change: %v, want errno 5 (EIO)", e, err)
		}
	}
}
