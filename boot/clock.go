package boot

import "time"

// Clock is the time source of the boot's retry loops, the rescue shell's
// pauses, the supervisor and the log, injected so that the unit tests run
// the whole sequence with a fake clock.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SystemClock is the real clock.
func SystemClock() Clock { return systemClock{} }
