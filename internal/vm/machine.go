package vm

import (
	"bytes"
	"errors"
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
)

// Machine is a running qemu guest.
type Machine struct {
	t       testing.TB
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	con     *console
	qmpPath string
	logPath string
	started time.Time

	readDone chan struct{} // closed when the console reader has finished
	exited   chan struct{} // closed when qemu has exited
	waitErr  error         // qemu's exit, valid after exited is closed
	stderr   bytes.Buffer  // qemu's own messages

	killOnce sync.Once
}

// Start boots a guest for the rest of test t; Cleanup kills it. Missing
// build outputs or tools mark the test Missing; a qemu that fails to start
// fails the test.
func Start(t testing.TB, o Options) *Machine {
	t.Helper()
	qemu := testutil.RequireTool(t, "qemu-system-x86_64")
	if o.Kernel == "" && !o.Firmware {
		o.Kernel = Kernel(t)
	}
	if o.Initramfs == "" && !o.Firmware {
		o.Initramfs = Initramfs(t)
	}
	socat := ""
	for _, n := range o.NICs {
		if n.User != nil && len(n.User.Forwards) > 0 {
			socat = testutil.RequireTool(t, "socat")
		}
	}
	args, err := qemuArgs(o, socat)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	name := o.Name
	if name == "" {
		name = "qemu"
	}
	m := &Machine{
		t:        t,
		name:     name,
		con:      newConsole(),
		qmpPath:  filepath.Join(dir, "qmp.sock"),
		logPath:  filepath.Join(dir, "console.log"),
		readDone: make(chan struct{}),
		exited:   make(chan struct{}),
	}
	if o.NetNS != "" {
		ip := testutil.RequireTool(t, "ip")
		args = append([]string{"netns", "exec", o.NetNS, qemu}, args...)
		qemu = ip
	}
	if err := m.start(qemu, args); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	t.Cleanup(m.cleanup)
	return m
}

// start runs qemu with the QMP listener and console plumbing.
func (m *Machine) start(qemu string, args []string) error {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: m.qmpPath, Net: "unix"})
	if err != nil {
		return err
	}
	ln.SetUnlinkOnClose(false)
	qmpFile, err := ln.File()
	ln.Close() // qemu owns the listening socket from here
	if err != nil {
		return err
	}
	defer qmpFile.Close()
	logFile, err := os.Create(m.logPath)
	if err != nil {
		return err
	}
	m.cmd = exec.Command(qemu, args...)
	m.cmd.ExtraFiles = []*os.File{qmpFile} // fd 3 = qmpFD
	m.cmd.Stderr = &m.stderr
	// If the test binary dies, qemu dies with it.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return err
	}
	if m.stdin, err = m.cmd.StdinPipe(); err != nil {
		logFile.Close()
		return err
	}
	m.started = time.Now()
	if err := m.cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("%s: %w", qemu, err)
	}
	var live func(string)
	if os.Getenv("NBDBOOT_CONSOLE") == "1" {
		live = func(l string) { m.t.Logf("%s console: %s", m.name, l) }
	}
	go func() {
		defer close(m.readDone)
		defer logFile.Close()
		m.con.run(stdout, logFile, live)
	}()
	go func() {
		<-m.readDone // Wait closes stdout: read everything first
		m.waitErr = m.cmd.Wait()
		close(m.exited)
	}()
	return nil
}

// Since is the time since qemu was started.
func (m *Machine) Since() time.Duration { return time.Since(m.started) }

// ConsolePath is the file the guest's serial output is written to.
func (m *Machine) ConsolePath() string { return m.logPath }

// Expect waits up to timeout for a console line matching the regular
// expression pattern and returns its submatches. Lines are consumed up to
// the match; it fails early when qemu exits or the kernel panics.
func (m *Machine) Expect(pattern string, timeout time.Duration) ([]string, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("console pattern %q: %w", pattern, err)
	}
	return m.con.expect(re, timeout)
}

// ExpectLine is Expect that fails the test.
func (m *Machine) ExpectLine(pattern string, timeout time.Duration) []string {
	m.t.Helper()
	match, err := m.Expect(pattern, timeout)
	if err != nil {
		m.t.Fatalf("%s after %v: %v", m.name, m.Since().Round(time.Millisecond), err)
	}
	return match
}

// Send writes s to the guest's serial console.
func (m *Machine) Send(s string) error {
	_, err := io.WriteString(m.stdin, s)
	return err
}

// Monitor runs a human monitor command ("set_link net0 off", "info
// network") and returns its output.
func (m *Machine) Monitor(command string) (string, error) {
	select {
	case <-m.exited:
		return "", fmt.Errorf("monitor command %q: qemu has exited", command)
	default:
	}
	return qmpCommand(m.qmpPath, command, 10*time.Second)
}

// Panicked returns the kernel's panic line, or "" if it did not panic.
func (m *Machine) Panicked() string { return m.con.panicked() }

// Wait waits up to timeout for qemu to exit and returns its exit status
// (0 after the guest powered off). On a timeout qemu is killed and an error
// returned. A kernel panic also exits with 0 (panic=-1, -no-reboot): check
// Panicked.
func (m *Machine) Wait(timeout time.Duration) (int, error) {
	select {
	case <-m.exited:
	case <-time.After(timeout):
		m.kill()
		<-m.exited
		return -1, fmt.Errorf("qemu still running after %v: killed", timeout)
	}
	var ee *exec.ExitError
	switch {
	case m.waitErr == nil:
		return 0, nil
	case errors.As(m.waitErr, &ee):
		return ee.ExitCode(), nil
	}
	return -1, m.waitErr
}

// WaitExit waits for the guest to power off; it fails the test if qemu is
// still running after timeout, exits with a failure or the kernel panicked.
func (m *Machine) WaitExit(timeout time.Duration) {
	m.t.Helper()
	code, err := m.Wait(timeout)
	switch {
	case err != nil:
		m.t.Fatal(err)
	case code != 0:
		m.t.Fatalf("qemu exited with status %d: %s", code, strings.TrimSpace(m.stderr.String()))
	case m.Panicked() != "":
		m.t.Fatalf("guest kernel panicked: %s", m.Panicked())
	}
}

// Kill stops qemu at once.
func (m *Machine) Kill() {
	m.kill()
	<-m.exited
}

func (m *Machine) kill() {
	m.killOnce.Do(func() {
		m.stdin.Close()
		m.cmd.Process.Kill()
	})
}

// cleanup kills qemu and, if the test failed, logs the console's end and
// qemu's messages.
func (m *Machine) cleanup() {
	m.kill()
	<-m.exited
	if !m.t.Failed() {
		return
	}
	lines := m.con.tail(consoleTailLines)
	m.t.Logf("%s console (%d lines):\n%s", m.name, len(lines), strings.Join(lines, "\n"))
	if s := strings.TrimSpace(m.stderr.String()); s != "" {
		m.t.Logf("%s stderr:\n%s", m.name, s)
	}
}

// consoleTailLines caps how much console a failed test logs (a full boot
// is a few hundred lines).
const consoleTailLines = 2000
