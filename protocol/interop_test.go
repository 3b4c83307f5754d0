package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// Interoperability with NBD peers nobody here wrote: nbdkit and qemu-nbd as
// servers for the client side, nbdinfo (libnbd) as client of the server side.

// startPeer runs a server on the far end of a socketpair, as its stdin and
// stdout (nbdkit -s), and returns our end.
func startPeer(t *testing.T, args ...string) net.Conn {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout = theirs, theirs
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	theirs.Close()
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		t.Fatalf("FileConn: %v", err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() {
		conn.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("%s stderr:\n%s", args[0], stderr.String())
		}
	})
	return conn
}

func TestClientAgainstNbdkit(t *testing.T) {
	nbdkit := testutil.RequireTool(t, "nbdkit")
	tests := []struct {
		name           string
		args           []string
		wantStructured bool
		wantExportName bool
	}{
		{"GO structured", nil, true, false},
		{"no structured replies", []string{"--no-sr"}, false, false},
		{"plain newstyle falls back to EXPORT_NAME", []string{"--mask-handshake=0"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{nbdkit, "-s", "--exit-with-parent"}, tt.args...), "memory", "1M")
			conn := startPeer(t, args...)
			n, err := ClientHandshake(conn, ClientOptions{Structured: true, MetaContexts: []string{MetaContextBaseAllocation}})
			if err != nil {
				t.Fatalf("ClientHandshake: %v", err)
			}
			if n.Size != 1<<20 || n.Flags&FlagHasFlags == 0 || n.Structured != tt.wantStructured || n.UsedExportName != tt.wantExportName {
				t.Fatalf("Negotiated %+v", n)
			}
			if _, ok := n.MetaContexts[MetaContextBaseAllocation]; ok != tt.wantStructured {
				t.Fatalf("meta contexts %v with structured=%v", n.MetaContexts, tt.wantStructured)
			}
			c := NewClient(conn, n)
			data := bytes.Repeat([]byte{0xab}, 8192)
			if _, err := c.WriteAt(data, 4096, 0); err != nil {
				t.Fatalf("WriteAt: %v", err)
			}
			if err := c.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			got := make([]byte, 16384)
			if _, err := c.ReadAt(got, 0); err != nil {
				t.Fatalf("ReadAt: %v", err)
			}
			want := append(append(make([]byte, 4096), data...), make([]byte, 4096)...)
			if !bytes.Equal(got, want) {
				t.Fatalf("ReadAt returned different data")
			}
			if err := c.WriteZeroes(4096, 4096, 0); err != nil {
				t.Fatalf("WriteZeroes: %v", err)
			}
			if err := c.Trim(8192, 4096, 0); err != nil {
				t.Fatalf("Trim: %v", err)
			}
			if _, err := c.ReadAt(got[:8], 1<<20-4); !errors.Is(err, Errno(EINVAL)) {
				t.Errorf("ReadAt past the end: %v, want EINVAL", err)
			}
			if tt.wantStructured {
				ext, err := c.BlockStatus(0, 16384, 0)
				if err != nil || len(ext) == 0 {
					t.Fatalf("BlockStatus = %v, %v", ext, err)
				}
				var total uint64
				for _, e := range ext {
					total += uint64(e.Length)
				}
				if total == 0 || total > 1<<20 {
					t.Errorf("BlockStatus extents cover %d bytes", total)
				}
			}
			if err := c.Disconnect(); err != nil {
				t.Fatalf("Disconnect: %v", err)
			}
		})
	}
}

func TestClientAgainstNbdkitOldstyle(t *testing.T) {
	nbdkit := testutil.RequireTool(t, "nbdkit")
	conn := startPeer(t, nbdkit, "-s", "--exit-with-parent", "--oldstyle", "memory", "1M")
	if _, err := ClientHandshake(conn, ClientOptions{}); !errors.Is(err, ErrOldstyle) {
		t.Fatalf("ClientHandshake error %v, want ErrOldstyle", err)
	}
}

// startQemuNbd serves a raw image as export "disk" on a unix socket.
func startQemuNbd(t *testing.T) string {
	t.Helper()
	qemuNbd := testutil.RequireTool(t, "qemu-nbd")
	dir := t.TempDir()
	img, sock := filepath.Join(dir, "disk.img"), filepath.Join(dir, "sock")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "pid")
	// --fork returns once the socket listens.
	cmd := exec.Command(qemuNbd, "--fork", "--pid-file", pidFile, "--persistent", "--shared=8", "-k", sock, "-f", "raw", "-x", "disk", "-D", "a test disk", img)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-nbd: %v\n%s", err, out)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("qemu-nbd pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("qemu-nbd pid file %q: %v", b, err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGTERM) })
	return sock
}

func dialUnix(t *testing.T, sock string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClientAgainstQemuNbd(t *testing.T) {
	sock := startQemuNbd(t)

	list, err := ClientList(dialUnix(t, sock))
	if err != nil {
		t.Fatalf("ClientList: %v", err)
	}
	if !reflect.DeepEqual(list, []ExportInfo{{Name: "disk", Description: "a test disk"}}) {
		t.Errorf("ClientList = %+v", list)
	}

	info, err := ClientInfo(dialUnix(t, sock), "disk")
	if err != nil || info.Size != 1<<20 || info.Description != "a test disk" || info.MinBlock == 0 {
		t.Errorf("ClientInfo = %+v, %v", info, err)
	}

	if _, err := ClientHandshake(dialUnix(t, sock), ClientOptions{Export: "nope"}); !errors.Is(err, ErrUnknownExport) {
		t.Errorf("ClientHandshake of an unknown export: %v, want ErrUnknownExport", err)
	}

	conn := dialUnix(t, sock)
	n, err := ClientHandshake(conn, ClientOptions{Export: "disk", Structured: true, MetaContexts: []string{MetaContextBaseAllocation}})
	if err != nil {
		t.Fatalf("ClientHandshake: %v", err)
	}
	if !n.Structured || n.Name != "disk" || n.Size != 1<<20 || len(n.MetaContexts) != 1 {
		t.Fatalf("Negotiated %+v", n)
	}
	c := NewClient(conn, n)
	if _, err := c.WriteAt([]byte("qemu"), 512, CmdFlagFUA); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	p := make([]byte, 4096)
	if _, err := c.ReadAt(p, 0); err != nil || string(p[512:516]) != "qemu" {
		t.Fatalf("ReadAt = %q, %v", p[512:516], err)
	}
	if ext, err := c.BlockStatus(0, 1<<20, 0); err != nil || len(ext) == 0 {
		t.Fatalf("BlockStatus = %v, %v", ext, err)
	}
	if err := c.Disconnect(); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
}

// serveUnix runs ServerHandshake plus memServer for every connection on a
// unix socket until the test ends.
func serveUnix(t *testing.T, disk []byte) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				sess, err := ServerHandshake(c, testExports, ServerOptions{})
				if err != nil {
					return
				}
				var id uint32
				if len(sess.MetaContexts) > 0 {
					id = sess.MetaContexts[0].ID
				}
				memServer(sess.Conn, disk, sess.Structured, id)
			}()
		}
	}()
	return sock
}

func TestServerAgainstNbdinfo(t *testing.T) {
	nbdinfo := testutil.RequireTool(t, "nbdinfo")
	sock := serveUnix(t, make([]byte, 1<<20))

	out, err := exec.Command(nbdinfo, "--json", "nbd+unix:///root?socket="+sock).Output()
	if err != nil {
		t.Fatalf("nbdinfo: %v", err)
	}
	var info struct {
		Protocol string `json:"protocol"`
		Exports  []struct {
			Name      string   `json:"export-name"`
			Desc      string   `json:"description"`
			Size      uint64   `json:"export-size"`
			MinBlock  uint32   `json:"block_size_minimum"`
			PrefBlock uint32   `json:"block_size_preferred"`
			MaxBlock  uint32   `json:"block_size_maximum"`
			ReadOnly  bool     `json:"is_read_only"`
			CanFlush  bool     `json:"can_flush"`
			CanFUA    bool     `json:"can_fua"`
			Contexts  []string `json:"contexts"`
		} `json:"exports"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("nbdinfo JSON: %v\n%s", err, out)
	}
	if len(info.Exports) != 1 {
		t.Fatalf("nbdinfo: %s", out)
	}
	e := info.Exports[0]
	if info.Protocol != "newstyle-fixed" || e.Name != "root" || e.Desc != "the root fs" || e.Size != 1<<30 ||
		e.MinBlock != 512 || e.PrefBlock != 4096 || e.MaxBlock != 1<<20 || e.ReadOnly || !e.CanFlush || !e.CanFUA ||
		!reflect.DeepEqual(e.Contexts, []string{MetaContextBaseAllocation}) {
		t.Errorf("nbdinfo:\n%s", out)
	}

	out, err = exec.Command(nbdinfo, "--list", "--json", "nbd+unix:///?socket="+sock).Output()
	if err != nil {
		t.Fatalf("nbdinfo --list: %v", err)
	}
	if !bytes.Contains(out, []byte(`"export-name": "root"`)) || !bytes.Contains(out, []byte(`"export-name": ""`)) {
		t.Errorf("nbdinfo --list:\n%s", out)
	}

	out, err = exec.Command(nbdinfo, "--map", "nbd+unix:///?socket="+sock).CombinedOutput()
	if err != nil {
		t.Fatalf("nbdinfo --map: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("hole,zero")) {
		t.Errorf("nbdinfo --map:\n%s", out)
	}

	out, err = exec.Command(nbdinfo, "nbd+unix:///nope?socket="+sock).CombinedOutput()
	if err == nil {
		t.Errorf("nbdinfo of an unknown export succeeded:\n%s", out)
	}
}

// nbdshScript exercises option haggling the way libnbd does it.
const nbdshScript = `
import os
h.set_opt_mode(True)
h.connect_unix(os.environ["SOCK"])
h.set_export_name("root")
got = []
h.opt_list_meta_context(lambda name: got.append(name) or 0)
assert got == ["base:allocation"], got
h.add_meta_context("base:")
got = []
h.opt_list_meta_context(lambda name: got.append(name) or 0)
assert got == ["base:allocation"], got
h.clear_meta_contexts()
h.set_export_name("nope")
try:
    h.opt_info()
    raise Exception("opt_info of an unknown export succeeded")
except nbd.Error as e:
    pass
h.set_export_name("root")
h.add_meta_context("base:allocation")
h.opt_info()
assert h.get_size() == 1 << 30
h.opt_go()
assert h.can_meta_context("base:allocation")
assert h.get_block_size(nbd.SIZE_MAXIMUM) == 1 << 20
assert h.pread(512, 0) == bytes(512)
h.pwrite(b"x" * 512, 512)
assert h.pread(512, 512) == b"x" * 512
exts = []
h.block_status(4096, 0, lambda ctx, off, entries, err: exts.append((ctx, entries)) or 0)
assert exts == [("base:allocation", [2048, 0, 2048, 3])], exts
h.shutdown()
print("ok")
`

func TestServerAgainstNbdsh(t *testing.T) {
	nbdsh := testutil.RequireTool(t, "nbdsh")
	sock := serveUnix(t, make([]byte, 1<<20))
	cmd := exec.Command(nbdsh, "-c", nbdshScript)
	// python3-libnbd lives in the system python, which a pyenv or venv on
	// PATH would hide.
	cmd.Env = append(os.Environ(), "SOCK="+sock, "PATH=/usr/bin:"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Equal(bytes.TrimSpace(out), []byte("ok")) {
		t.Fatalf("nbdsh: %v\n%s", err, out)
	}
}
