package vm

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is a program running in a lab's namespace (Lab.Start): a DHCP
// server, an nbdserve binary. Its stdout and stderr go to Log; it is
// stopped at cleanup, and its log printed if the test failed.
type Process struct {
	Name string
	Log  *LineLog

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's, valid once exited is closed
}

// Start runs program with args inside the lab's namespace until the test
// ends.
func (l *Lab) Start(t testing.TB, program string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: program, Log: NewLineLog(), exited: make(chan struct{})}
	p.cmd = l.Command(program, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.Log, p.Log
	// If the test binary dies, the program dies with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s in %s: %v", program, l.NS, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s:\n%s", program, p.Log.Tail(60))
		}
	})
	return p
}

// WaitLog waits up to d for a line of the log holding substr; it fails
// at once when the program exits first.
func (p *Process) WaitLog(substr string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	go func() {
		select {
		case <-p.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := p.Log.WaitCount(ctx, substr, 1); err != nil {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited (%v) before logging %q; log:\n%s", p.Name, p.err, substr, p.Log.Tail(20))
		default:
		}
		return fmt.Errorf("%s: %w; log:\n%s", p.Name, err, p.Log.Tail(20))
	}
	return nil
}

// Stop sends SIGTERM and waits up to 30 s for the program to exit; it
// returns its exit error, if any. Stopping twice is fine.
func (p *Process) Stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within 30s of SIGTERM", p.Name)
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() {
		return nil
	}
	return p.err
}

// Wait waits up to d for the program to exit by itself and returns its
// exit error (nil for status 0).
func (p *Process) Wait(d time.Duration) error {
	select {
	case <-p.exited:
		return p.err
	case <-time.After(d):
		return fmt.Errorf("%s still running after %v", p.Name, d)
	}
}
