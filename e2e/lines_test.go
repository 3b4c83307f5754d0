package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
)

// lineLog collects what a writer receives as lines and lets a test wait
// until the lines satisfy a condition. It is an io.Writer safe for
// concurrent use (the server's logger writes from many goroutines).
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	changed chan struct{} // closed and replaced on every new line
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) Write(p []byte) (int, error) {
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
func (l *lineLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Count is the number of lines containing substr.
func (l *lineLog) Count(substr string) int {
	n := 0
	for _, s := range l.Lines() {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

// WaitCount waits until at least n lines contain substr, or ctx ends.
func (l *lineLog) WaitCount(ctx context.Context, substr string, n int) error {
	for {
		l.mu.Lock()
		got := 0
		for _, s := range l.lines {
			if strings.Contains(s, substr) {
				got++
			}
		}
		ch := l.changed
		l.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d lines with %q (have %d): %w", n, substr, got, ctx.Err())
		case <-ch:
		}
	}
}

// Tail is the last n lines, joined, for failure messages.
func (l *lineLog) Tail(n int) string {
	lines := l.Lines()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
