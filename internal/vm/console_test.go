package vm

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConsoleExpect(t *testing.T) {
	r, w := io.Pipe()
	c := newConsole()
	var raw bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(r, &raw, nil)
	}()
	io.WriteString(w, "SeaBIOS\r\nBooting from ROM..MARK one\r\nMARK two\r\n")
	m, err := c.expect(regexp.MustCompile(`MARK (\w+)`), 5*time.Second)
	if err != nil || m[1] != "one" {
		t.Fatalf("first expect = %q, %v; want one", m, err)
	}
	// A timeout consumes nothing: "two" is still there afterwards.
	if _, err := c.expect(regexp.MustCompile(`never`), 10*time.Millisecond); err == nil {
		t.Fatal("expect of an absent line succeeded")
	}
	if m, err := c.expect(regexp.MustCompile(`^MARK (\w+)$`), 5*time.Second); err != nil || m[1] != "two" {
		t.Fatalf("second expect = %q, %v; want two", m, err)
	}
	// A line written while expect waits wakes it up.
	go io.WriteString(w, "late\n")
	if _, err := c.expect(regexp.MustCompile(`^late$`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "[    1.0] Kernel panic - not syncing: Attempted to kill init!\n")
	if _, err := c.expect(regexp.MustCompile(`NBDBOOT`), 5*time.Second); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("expect after a panic: %v, want a panic error", err)
	}
	w.Close()
	<-done
	if _, err := c.expect(regexp.MustCompile(`NBDBOOT`), 5*time.Second); err == nil {
		t.Fatal("expect after EOF succeeded")
	}
	if !strings.HasPrefix(raw.String(), "SeaBIOS\r\n") {
		t.Errorf("raw log = %q, want the bytes as written", raw.String())
	}
	if got := c.tail(2); len(got) != 2 || got[1] != "[    1.0] Kernel panic - not syncing: Attempted to kill init!" {
		t.Errorf("tail = %q", got)
	}
}

func TestConsoleEOF(t *testing.T) {
	c := newConsole()
	c.run(strings.NewReader("partial line without newline"), io.Discard, nil)
	if m, err := c.expect(regexp.MustCompile(`partial`), time.Second); err != nil || m[0] != "partial" {
		t.Fatalf("expect of the last unterminated line = %q, %v", m, err)
	}
}

func TestConsolePrompt(t *testing.T) {
	r, w := io.Pipe()
	c := newConsole()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(r, io.Discard, nil)
	}()
	io.WriteString(w, "Booting from ROM..$ ")
	if _, err := c.expect(regexp.MustCompile(`\$ $`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// The prompt line, once complete, is consumed: the next expect sees
	// only what follows.
	io.WriteString(w, "echo hi\r\nhi\r\n$ ")
	if m, err := c.expect(regexp.MustCompile(`^(echo )?hi$`), 5*time.Second); err != nil || m[0] != "hi" {
		t.Fatalf("expect after a prompt = %q, %v; want the output line", m, err)
	}
	w.Close()
	<-done
}

// A line still arriving must not satisfy an unanchored pattern: "rw"
// cut short reads "r".
func TestConsolePartialNotMatched(t *testing.T) {
	r, w := io.Pipe()
	c := newConsole()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(r, io.Discard, nil)
	}()
	re := regexp.MustCompile(`root=(\S+) (\S+) (\S+)`)
	io.WriteString(w, "root=/dev/nbd0 ext4 r") // returns once the console has read it
	if m, err := c.expect(re, 100*time.Millisecond); err == nil {
		t.Fatalf("expect matched the unterminated line: %q", m)
	}
	io.WriteString(w, "w,relatime\n")
	if m, err := c.expect(re, 5*time.Second); err != nil || m[3] != "rw,relatime" {
		t.Fatalf("expect = %q, %v; want the whole line's options rw,relatime", m, err)
	}
	w.Close()
	<-done
}
