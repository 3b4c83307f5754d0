package boot

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Logger writes the boot log to the console: one prefix, the time since
// /init started, the phase, the message.
//
//	nbdboot: [  0.412s] network: eth0 10.0.2.15/24 via dhcp (0.301s)
type Logger struct {
	mu    sync.Mutex
	w     io.Writer
	clock Clock
	start time.Time
	debug bool
}

// NewLogger logs to w, measuring from clock.Now().
func NewLogger(w io.Writer, clock Clock) *Logger {
	return &Logger{w: w, clock: clock, start: clock.Now()}
}

// NewLoggerSince logs to w, measuring from start (the supervisor goes on
// with PID 1's timeline).
func NewLoggerSince(w io.Writer, clock Clock, start time.Time) *Logger {
	return &Logger{w: w, clock: clock, start: start}
}

// SetDebug turns the debug lines on or off (nbdboot.debug).
func (l *Logger) SetDebug(on bool) {
	l.mu.Lock()
	l.debug = on
	l.mu.Unlock()
}

// Since is the time since the logger started.
func (l *Logger) Since() time.Duration { return l.clock.Now().Sub(l.start) }

// Printf logs one line (a trailing newline is added).
func (l *Logger) Printf(format string, args ...any) {
	l.line(format, args...)
}

// Debugf logs only under nbdboot.debug.
func (l *Logger) Debugf(format string, args ...any) {
	l.mu.Lock()
	on := l.debug
	l.mu.Unlock()
	if on {
		l.line("debug: "+format, args...)
	}
}

func (l *Logger) line(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "nbdboot: [%8.3fs] %s\n", l.clock.Now().Sub(l.start).Seconds(), msg)
}

// Phase starts timing a named phase.
func (l *Logger) Phase(name string) *Phase {
	return &Phase{l: l, name: name, start: l.clock.Now()}
}

// Phase is one timed step of the boot.
type Phase struct {
	l     *Logger
	name  string
	start time.Time
}

// Elapsed is the time since the phase started.
func (p *Phase) Elapsed() time.Duration { return p.l.clock.Now().Sub(p.start) }

// Printf logs a line of the phase, without timing.
func (p *Phase) Printf(format string, args ...any) {
	p.l.Printf("%s: %s", p.name, fmt.Sprintf(format, args...))
}

// Debugf logs a debug line of the phase.
func (p *Phase) Debugf(format string, args ...any) {
	p.l.Debugf("%s: %s", p.name, fmt.Sprintf(format, args...))
}

// Done logs the phase's result with its duration.
func (p *Phase) Done(format string, args ...any) {
	p.l.Printf("%s: %s (%.3fs)", p.name, fmt.Sprintf(format, args...), p.Elapsed().Seconds())
}
