package cow

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The child of TestCrashKillProcess runs rounds of killOps random
// requests over the base file, Syncs after each and prints "synced R".
// After the target round its requests keep to the upper half of the
// image, and after two more rounds it waits to be killed.
const (
	killOps       = 40
	killEnvDir    = "COW_KILL_CHILD_DIR"
	killEnvBase   = "COW_KILL_CHILD_BASE"
	killEnvTarget = "COW_KILL_CHILD_TARGET"
	killSeed      = 4242
)

func killChild(dir, basePath string, target int) error {
	f, err := os.Open(basePath)
	if err != nil {
		return err
	}
	ov, err := Open(dir, &fileBase{File: f, size: testSize}, Options{})
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(killSeed, 1))
	for round := 1; round <= target+2; round++ {
		for range killOps {
			p := killOp(r, round > target)
			var err error
			switch p.kind {
			case 'w':
				_, err = ov.WriteAt(bytes.Repeat([]byte{p.fill}, int(p.n)), p.off)
			case 't':
				err = ov.Trim(p.off, p.n)
			case 'z':
				err = ov.Zero(p.off, p.n, false, false)
			}
			if err != nil {
				return err
			}
		}
		if err := ov.Sync(); err != nil {
			return err
		}
		fmt.Printf("synced %d\n", round)
	}
	fmt.Println("waiting")
	select {} // until killed
}

// TestCrashKillProcess kills a real process with SIGKILL right after it
// reported a Sync, while it goes on writing, and checks the overlay it
// left: every block as at that Sync, or as one of the versions the
// requests after it gave the block.
func TestCrashKillProcess(t *testing.T) {
	if dir := os.Getenv(killEnvDir); dir != "" {
		target, _ := strconv.Atoi(os.Getenv(killEnvTarget))
		if err := killChild(dir, os.Getenv(killEnvBase), target); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		return
	}
	base := newTestBase(t, testSize, testHoles...)
	before := base.sum(t)
	dir := t.TempDir()
	const target = 3
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKillProcess$")
	cmd.Env = append(os.Environ(), killEnvDir+"="+dir, killEnvBase+"="+base.path, killEnvTarget+"="+strconv.Itoa(target))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	deadline := time.After(60 * time.Second)
	for want := fmt.Sprintf("synced %d", target); ; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("child exited before reporting its sync")
			}
			if strings.HasPrefix(l, "error") {
				t.Fatalf("child: %s", l)
			}
			if l != want {
				continue
			}
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("child did not report its sync within 60 s")
		}
		break
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines {
		}
	}()
	cmd.Wait()

	// Replay the child's requests on a model.
	r := rand.New(rand.NewPCG(killSeed, 1))
	model := append([]byte(nil), base.content...)
	for range target * killOps {
		killOp(r, false).applyModel(model)
	}
	synced := append([]byte(nil), model...)
	later := map[int64]map[[32]byte]bool{}
	for range 2 * killOps {
		p := killOp(r, true)
		p.applyModel(model)
		for b := p.off / bs4k; b <= (p.off+p.n-1)/bs4k; b++ {
			if later[b] == nil {
				later[b] = map[[32]byte]bool{}
			}
			later[b][sha256.Sum256(blockOf(model, b))] = true
		}
	}
	ov := openT(t, dir, base.be, Options{})
	defer ov.Close()
	got := readAll(t, ov)
	for b := int64(0); b*bs4k < testSize; b++ {
		g := blockOf(got, b)
		if later[b] == nil && b < killUpper/bs4k && !bytes.Equal(g, blockOf(synced, b)) {
			t.Errorf("block %d, untouched after the sync, reads differently: %s", b, firstDiff(g, blockOf(synced, b)))
		}
		if !bytes.Equal(g, blockOf(synced, b)) && !later[b][sha256.Sum256(g)] {
			t.Errorf("block %d reads neither as synced nor as a later version: %s", b, firstDiff(g, blockOf(synced, b)))
		}
	}
	if base.sum(t) != before {
		t.Fatal("the base image changed")
	}
}

// killUpper is where the requests after the target round start, at a
// block boundary, so the blocks below keep their synced content.
const killUpper = 8 * bs4k

// killOp is randomOp, kept to [killUpper, testSize) when upper is set.
func killOp(r *rand.Rand, upper bool) op {
	p := randomOp(r)
	if upper && p.off < killUpper {
		p.off = killUpper + p.off%(testSize-killUpper)
		p.n = min(p.n, testSize-p.off)
	}
	return p
}
