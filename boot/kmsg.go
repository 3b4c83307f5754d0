package boot

import (
	"io"
	"os"
	"sync"
)

// kmsgLevel is the level of the supervisor's kernel log lines
// (KERN_NOTICE: normal but significant).
const kmsgLevel = 5

// kmsgWriter writes each log line as one record of the kernel log
// (/dev/kmsg), where dmesg and journald find it, and to the console too
// when the kernel would not print it there (a quiet boot).
type kmsgWriter struct {
	console       io.Writer
	open          func() (io.WriteCloser, error)
	showOnConsole bool // the kernel prints kmsgLevel lines on the console

	mu   sync.Mutex
	kmsg io.WriteCloser
}

func openKmsg() (io.WriteCloser, error) { return os.OpenFile("/dev/kmsg", os.O_WRONLY, 0) }

// Write takes one line (the Logger writes a line per call).
func (w *kmsgWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.kmsg == nil && w.open != nil {
		if k, err := w.open(); err == nil {
			w.kmsg = k
		}
	}
	if w.kmsg != nil {
		rec := append([]byte{'<', '0' + kmsgLevel, '>'}, p...)
		if _, err := w.kmsg.Write(rec); err == nil && w.showOnConsole {
			return len(p), nil
		}
	}
	if w.console == nil {
		return len(p), nil
	}
	return w.console.Write(p)
}
