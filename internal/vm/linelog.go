package vm

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// LineLog collects what a writer receives as lines and lets a test wait
// until the lines satisfy a condition: the log of an in-process server, a
// dnsmasq or an nbdserve process. It is an io.Writer safe for concurrent
// use (a server's logger writes from many goroutines).
type LineLog struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	changed chan struct{} // closed and replaced on every new line
}

// NewLineLog returns an empty LineLog.
func NewLineLog() *LineLog { return &LineLog{changed: make(chan struct{})} }

// Write appends p; each complete line becomes visible to the waiters.
func (l *LineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, strings.TrimRight(string(l.partial[:i]), "\r"))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// Lines returns a copy of the complete lines so far.
func (l *LineLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Count is the number of lines containing substr.
func (l *LineLog) Count(substr string) int {
	n := 0
	for _, s := range l.Lines() {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

// WaitCount waits until at least n lines contain substr, or ctx ends.
func (l *LineLog) WaitCount(ctx context.Context, substr string, n int) error {
	return l.wait(ctx, fmt.Sprintf("with %q", substr), n, func(s string) bool { return strings.Contains(s, substr) })
}

// WaitMatch waits until at least n lines match re, or ctx ends.
func (l *LineLog) WaitMatch(ctx context.Context, re *regexp.Regexp, n int) error {
	return l.wait(ctx, "matching "+re.String(), n, re.MatchString)
}

// wait waits until at least n lines satisfy ok (what describes them in
// the error), or ctx ends.
func (l *LineLog) wait(ctx context.Context, what string, n int, ok func(string) bool) error {
	got := 0
	err := l.WaitUntil(ctx, func(lines []string) bool {
		got = 0
		for _, s := range lines {
			if ok(s) {
				got++
			}
		}
		return got >= n
	})
	if err != nil {
		return fmt.Errorf("waiting for %d lines %s (have %d): %w", n, what, got, err)
	}
	return nil
}

// WaitUntil waits until done holds for the complete lines so far (it is
// called again on every new line, with the log locked: it must not keep
// the slice), or ctx ends.
func (l *LineLog) WaitUntil(ctx context.Context, done func(lines []string) bool) error {
	for {
		l.mu.Lock()
		ok := done(l.lines)
		ch := l.changed
		l.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Tail is the last n lines, joined, for failure messages.
func (l *LineLog) Tail(n int) string {
	lines := l.Lines()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
