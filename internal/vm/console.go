package vm

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// panicRE matches the kernel's panic line.
var panicRE = regexp.MustCompile(`Kernel panic - not syncing`)

// console collects the guest's serial output line by line.
type console struct {
	mu      sync.Mutex
	lines   []string
	partial string        // output after the last newline (a prompt)
	cursor  int           // lines before cursor were consumed by expect
	changed chan struct{} // closed and replaced on every new line or at EOF
	eof     bool
	panic   string // the kernel panic line, if one was seen
}

func newConsole() *console { return &console{changed: make(chan struct{})} }

// run reads r until EOF, copying everything to raw and each line to live
// (when not nil).
func (c *console) run(r io.Reader, raw io.Writer, live func(string)) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			raw.Write(buf[:n])
			c.add(string(buf[:n]), live)
		}
		if err != nil {
			c.mu.Lock()
			if c.partial != "" {
				c.addLineLocked(c.partial, live)
				c.partial = ""
			}
			c.eof = true
			c.notifyLocked()
			c.mu.Unlock()
			return
		}
	}
}

// add splits output into lines, keeping an unterminated rest as partial.
func (c *console) add(s string, live func(string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s = c.partial + s
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		c.addLineLocked(s[:i], live)
		s = s[i+1:]
	}
	c.partial = s
	c.notifyLocked()
}

func (c *console) addLineLocked(line string, live func(string)) {
	line = strings.TrimRight(line, "\r")
	if live != nil {
		live(line)
	}
	c.lines = append(c.lines, line)
	if c.panic == "" && panicRE.MatchString(line) {
		c.panic = line
	}
}

func (c *console) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// expect waits until a line after the cursor matches re, moves the cursor
// past it and returns the submatches. Lines are consumed only by a match,
// as in expect(1): on a timeout the next expect sees them again. The
// unterminated last line (a shell prompt) is matched too by a pattern
// anchored at its end; once matched it is consumed when it completes.
func (c *console) expect(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	c.mu.Lock()
	next := c.cursor
	c.mu.Unlock()
	for {
		c.mu.Lock()
		for ; next < len(c.lines); next++ {
			if m := re.FindStringSubmatch(c.lines[next]); m != nil {
				c.cursor = next + 1
				c.mu.Unlock()
				return m, nil
			}
		}
		if p := strings.TrimRight(c.partial, "\r"); p != "" && next == len(c.lines) && promptPattern(re) {
			if m := re.FindStringSubmatch(p); m != nil {
				c.cursor = len(c.lines) + 1
				c.mu.Unlock()
				return m, nil
			}
		}
		eof, panicLine, changed := c.eof, c.panic, c.changed
		c.mu.Unlock()
		if panicLine != "" {
			return nil, fmt.Errorf("console: no line matching %q before the kernel panicked: %s", re, panicLine)
		}
		if eof {
			return nil, fmt.Errorf("console: no line matching %q before qemu exited", re)
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, fmt.Errorf("console: no line matching %q within %v", re, timeout)
		}
	}
}

// promptPattern reports whether re may match an unterminated line: only a
// pattern anchored at the end ("\\$ $") can tell a complete prompt from a
// line still arriving; `root=(\\S+)` would match "rw" cut short as "r".
func promptPattern(re *regexp.Regexp) bool {
	s := re.String()
	return strings.HasSuffix(s, "$") && !strings.HasSuffix(s, `\$`)
}

// tail returns the last n lines.
func (c *console) tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	from := max(0, len(c.lines)-n)
	return append([]string(nil), c.lines[from:]...)
}

// panicked returns the kernel panic line, or "".
func (c *console) panicked() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.panic
}
