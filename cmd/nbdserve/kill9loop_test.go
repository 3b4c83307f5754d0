package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// k9Client is the nbdsh script of TestKill9Loop: two connections to one
// export (multi-conn), random WRITE, FUA WRITE, WRITE_ZEROES (with and
// without NO_HOLE and FUA), TRIM and FLUSH on either. It keeps a model
// of the disk, prints the hashes of its 4 KiB blocks as it found them
// ("init b:hash ..."), and before each request prints the hashes of the 4 KiB
// blocks it changes as the request leaves them ("op FUA b:hash ..."),
// then "acked" once the server answered; "flushed" after a FLUSH.
const k9Client = `
import os, sys, random, hashlib
uri, seed, cow = os.environ['K9_URI'], int(os.environ['K9_SEED']), os.environ['K9_COW'] == '1'
mode = os.environ['K9_MODE']  # mixed, flush (no FUA) or fua (no FLUSH)
BS = 4096
hs = [nbd.NBD(), nbd.NBD()]
for x in hs:
    x.connect_uri(uri)
size = hs[0].get_size()
model = bytearray(hs[0].pread(size, 0))
r = random.Random(seed)
def op(fua, off, n):
    bl = range(off // BS, (off + n - 1) // BS + 1)
    print('op', int(fua), ' '.join('%d:%s' % (b, hashlib.sha256(model[b*BS:(b+1)*BS]).hexdigest()[:16]) for b in bl), flush=True)
print('init', ' '.join('%d:%s' % (b, hashlib.sha256(model[b*BS:(b+1)*BS]).hexdigest()[:16]) for b in range(size // BS)), flush=True)
print('ready', flush=True)
sys.stdin.readline()  # go
while True:
    h = r.choice(hs)
    k = r.randrange(12)
    off = r.randrange(size - 1)
    n = r.randrange(1, min(64 << 10, size - off) + 1)
    fua = mode == 'fua' and r.randrange(2) == 0 or mode == 'mixed' and r.randrange(3) == 0
    flags = nbd.CMD_FLAG_FUA if fua else 0
    if k == 0 and mode != 'fua':
        print('flush', flush=True)
        h.flush()
        print('flushed', flush=True)
        continue
    if k < 7:
        data = bytes([r.randrange(1, 256)]) * n
        model[off:off+n] = data
        op(fua, off, n)
        h.pwrite(data, off, flags)
    elif k < 10:
        if r.randrange(2) == 0:
            flags |= nbd.CMD_FLAG_NO_HOLE
        model[off:off+n] = bytes(n)
        op(fua, off, n)
        h.zero(n, off, flags)
    else:
        if cow:  # whole blocks only
            lo, hi = (off + BS - 1) // BS * BS, (off + n) // BS * BS
        else:    # a punched hole
            lo, hi = off, off + n
        if hi > lo:
            model[lo:hi] = bytes(hi - lo)
        op(fua, off, n)
        h.trim(n, off, flags)
    print('acked', flush=True)
`

// TestKill9Loop kills nbdserve with SIGKILL in the middle of a client's
// random requests on a plain and on a copy-on-write export at once (a
// new client of the cow export each trial, so that its writes change
// block states), with FLUSH and FUA, FLUSH only or FUA only in turn,
// restarts it and checks every 4 KiB block of both: a block reads as it
// was when last made durable (a FLUSH acknowledged on either connection,
// or a FUA request that covered it), or as one of the versions requests
// issued since gave it; a cow export's base is untouched. Trials:
// $NBDSERVE_KILL9_TRIALS with a seed from the clock (make soak), else 6
// with seed 4; NBDSERVE_KILL9_SEED sets the seed.
func TestKill9Loop(t *testing.T) {
	testutil.RequireTool(t, "nbdsh")
	testutil.RequireTool(t, "nbdcopy")
	trials, seed := 6, uint64(4) // make test: the same requests every run
	if s := os.Getenv("NBDSERVE_KILL9_TRIALS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("NBDSERVE_KILL9_TRIALS=%q: want a positive number", s)
		}
		trials, seed = n, uint64(time.Now().UnixNano())
	}
	if s := os.Getenv("NBDSERVE_KILL9_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("NBDSERVE_KILL9_SEED=%q: %v", s, err)
		}
		seed = n
	}
	dir := t.TempDir()
	const size = 4 << 20
	plain, base := filepath.Join(dir, "plain.img"), filepath.Join(dir, "base.img")
	randomImage(t, plain, size, 2)
	randomImage(t, base, size, 3)
	baseSum := sha(base)
	args := []string{"-state", filepath.Join(dir, "state"), "plain=" + plain, "disk=" + base + ",cow"}
	exports := []struct {
		name string
		cow  bool
	}{{"plain", false}, {"disk/pc%d", true}}
	modes := []string{"mixed", "flush", "fua"}
	t.Logf("kill -9 loop: seed %d (NBDSERVE_KILL9_SEED reruns it)", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	violations := 0
	for trial := range trials {
		srv := startServer(t, args...)
		clients := make([]*k9Run, len(exports))
		mode := modes[trial%len(modes)]
		img, err := os.ReadFile(plain) // before its client changes it
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range exports {
			clients[i] = startK9Client(t, srv.uri(k9Name(e.name, trial)), seed+uint64(trial*2+i), e.cow, mode)
		}
		// What the plain export's client read at its start (its "init"
		// line, taken in before its first request) is the file.
		if err := clients[0].checkInit(img); err != nil {
			violations++
			t.Errorf("trial %d (%s): the plain export's first read is not its file: %v", trial, mode, err)
		}
		// Each client started its requests once it had read its export
		// (startK9Client): the plain export's client writes while the
		// cow export's connects and reads its export.
		// Kill the server once both clients have had some requests answered.
		want := 5 + r.IntN(120)
		for _, c := range clients {
			c.waitAcks(t, want)
		}
		srv.kill9()
		for _, c := range clients {
			c.stop()
		}
		srv = startServer(t, args...)
		for i, e := range exports {
			out := filepath.Join(dir, "out.img")
			tool(t, "nbdcopy", srv.uri(k9Name(e.name, trial)), out)
			got, err := os.ReadFile(out)
			if err != nil || len(got) != size {
				t.Fatalf("trial %d: read back %d bytes of %s: %v", trial, len(got), e.name, err)
			}
			if err := clients[i].check(got); err != nil {
				violations++
				// Read it again through a fresh server: a second read
				// that differs points at the read path, not at the
				// data on disk.
				srv.cmd.Process.Kill()
				srv.cmd.Wait()
				srv = startServer(t, args...)
				tool(t, "nbdcopy", srv.uri(k9Name(e.name, trial)), out)
				again, _ := os.ReadFile(out)
				t.Errorf("trial %d (%s), export %s (seed %d): %v (read again through a new server: same bytes %v, then %v)",
					trial, mode, k9Name(e.name, trial), seed, err, bytes.Equal(again, got), clients[i].check(again))
			}
		}
		if sha(base) != baseSum {
			t.Fatalf("trial %d: the cow export's base changed", trial)
		}
		srv.cmd.Process.Kill()
		srv.cmd.Wait()
	}
	t.Logf("kill -9 loop: %d trials, %d exports each, %d violations", trials, len(exports), violations)
}

func k9Name(pattern string, trial int) string {
	if strings.Contains(pattern, "%d") {
		return fmt.Sprintf(pattern, trial)
	}
	return pattern
}

// k9Run is one client of a trial and what its output says.
type k9Run struct {
	cmd   *exec.Cmd
	lines chan string
	acks  int
	// durable[b] is block b's hash when it was last made durable, or as
	// the client found it (what a restarted server serves survives a
	// kill -9); versions[b] are the hashes requests issued since gave it.
	durable  map[int]string
	versions map[int][]string
	last     []int // blocks of the last request
	lastFUA  bool
	stderr   strings.Builder
	stdin    io.WriteCloser
}

func startK9Client(t *testing.T, uri string, seed uint64, cow bool, mode string) *k9Run {
	t.Helper()
	path := testutil.RequireTool(t, "nbdsh")
	c := &k9Run{lines: make(chan string, 1024), durable: map[int]string{}, versions: map[int][]string{}}
	c.cmd = exec.Command(path, "-c", k9Client)
	cowFlag := "0"
	if cow {
		cowFlag = "1"
	}
	c.cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin:"+os.Getenv("PATH"),
		"K9_URI="+uri, "K9_SEED="+strconv.FormatUint(seed, 10), "K9_COW="+cowFlag, "K9_MODE="+mode)
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(c.stop)
	c.apply(c.next(t))
	if l := c.next(t); l != "ready" {
		t.Fatalf("nbdsh client: %q\n%s", l, c.stderr.String())
	}
	c.stdin.Write([]byte("go\n"))
	return c
}

func (c *k9Run) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			c.cmd.Wait()
			t.Fatalf("nbdsh client ended early:\n%s", c.stderr.String())
		}
		return l
	case <-time.After(60 * time.Second):
		t.Fatal("nbdsh client printed nothing for 60 s")
	}
	return ""
}

// waitAcks consumes output until n more requests were answered.
func (c *k9Run) waitAcks(t *testing.T, n int) {
	t.Helper()
	for target := c.acks + n; c.acks < target; {
		c.apply(c.next(t))
	}
}

// stop ends the client and takes in what it printed before.
func (c *k9Run) stop() {
	c.cmd.Process.Kill()
	// Take in all the client printed before Wait, which closes the
	// stdout pipe: lines left in it (requests the server may have
	// served) would be lost to the model, and their changes would look
	// like lost or wrong blocks (the client runs ahead of the test by up
	// to the lines channel and the pipe).
	for l := range c.lines {
		c.apply(l)
	}
	c.cmd.Wait()
}

func (c *k9Run) apply(l string) {
	f := strings.Fields(l)
	switch {
	case len(f) >= 1 && f[0] == "init":
		for _, bh := range f[1:] {
			b, h, _ := strings.Cut(bh, ":")
			n, _ := strconv.Atoi(b)
			c.durable[n] = h
		}
	case len(f) >= 2 && f[0] == "op":
		c.last, c.lastFUA = c.last[:0], f[1] == "1"
		for _, bh := range f[2:] {
			b, h, _ := strings.Cut(bh, ":")
			n, _ := strconv.Atoi(b)
			c.versions[n] = append(c.versions[n], h)
			c.last = append(c.last, n)
		}
	case l == "acked":
		c.acks++
		if c.lastFUA {
			for _, b := range c.last {
				c.settle(b)
			}
		}
	case l == "flushed":
		c.acks++
		for b := range c.versions {
			c.settle(b)
		}
	}
}

// settle makes block b's newest version its durable one.
func (c *k9Run) settle(b int) {
	if v := c.versions[b]; len(v) > 0 {
		c.durable[b] = v[len(v)-1]
		delete(c.versions, b)
	}
}

func blockHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// checkInit compares what the client read at its start with img.
func (c *k9Run) checkInit(img []byte) error {
	var bad []int
	for b := 0; b*4096 < len(img); b++ {
		s := sha256.Sum256(img[b*4096 : (b+1)*4096])
		if c.durable[b] != hex.EncodeToString(s[:8]) {
			bad = append(bad, b)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d blocks differ, the first %v", len(bad), bad[:min(len(bad), 8)])
	}
	return nil
}

// check compares the image read back after the restart.
func (c *k9Run) check(img []byte) error {
	var bad []string
	zeroes := 0
	for b := 0; b*4096 < len(img); b++ {
		s := sha256.Sum256(img[b*4096 : (b+1)*4096])
		h := hex.EncodeToString(s[:8])
		ok := c.durable[b] == h
		for _, v := range c.versions[b] {
			ok = ok || v == h
		}
		if !ok {
			if bytes.Count(img[b*4096:(b+1)*4096], []byte{0}) == 4096 {
				zeroes++
			}
			blk := img[b*4096 : (b+1)*4096]
			what := fmt.Sprintf("starts %x", blk[:8])
			if bytes.Count(blk, blk[:1]) == len(blk) {
				what = fmt.Sprintf("all %#x", blk[0])
			}
			if len(c.versions[b]) == 0 {
				bad = append(bad, fmt.Sprintf("block %d lost its flushed content (%s)", b, what))
			} else {
				bad = append(bad, fmt.Sprintf("block %d reads neither as flushed nor as a later version (%s)", b, what))
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d blocks wrong (%d of them zeroes): %s", len(bad), zeroes, strings.Join(bad[:min(len(bad), 5)], "; "))
	}
	return nil
}
