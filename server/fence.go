package server

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// The fence keeps a dead connection's writes from landing after a new
// connection's. A client's identity is its overlay (EXPORT/CLIENT-ID) on
// a copy-on-write export, else the export's name and the client's IP
// address. When a connection of identity X has finished its handshake,
// and before its first request is read, the fence waits until every
// change (WRITE, TRIM, WRITE_ZEROES, FLUSH) that X's other connections
// had begun on the backend has completed, so a write the kernel resends
// on its new connection after a timeout is applied after the old copy,
// never before it. Connections of X that have had a change outstanding
// longer than the stale bound are closed, and a connection closed by the
// fence (or still busy when the bounded wait ends) has every change it
// begins afterwards refused with an I/O error, so nothing more of it
// lands. What the fence cannot see is documented in doc.go.

// errFenced refuses the changes of a connection the fence closed.
var errFenced = errors.New("connection closed by the fence for a newer connection of its client")

// maxFenceWait bounds the fence's wait when the reply timeout is larger
// or unset: a kernel whose new connection is held too long times it out
// as well.
const maxFenceWait = 10 * time.Second

// fence tracks the connections of every identity.
type fence struct {
	wait  time.Duration // bound on the wait for old changes
	stale time.Duration // a change outstanding longer than this marks its connection dead
	log   *slog.Logger
	now   func() time.Time
	// onWait, if set (tests), runs when a new connection starts waiting
	// for an old one's changes.
	onWait func()

	mu     sync.Mutex
	groups map[string]map[*fenceMember]struct{}
}

// newFence bounds its wait by the reply timeout (at most maxFenceWait)
// and treats changes outstanding longer than the reply timeout as stale.
func newFence(lim Limits, log *slog.Logger) *fence {
	wait, stale := maxFenceWait, lim.ReplyTimeout
	if lim.ReplyTimeout > 0 {
		wait = min(wait, lim.ReplyTimeout)
	} else {
		stale = 1<<63 - 1
	}
	return &fence{wait: wait, stale: stale, log: log, now: time.Now, groups: map[string]map[*fenceMember]struct{}{}}
}

// identity is the fence key of a connection serving exp to peer.
func identity(exp *Export, peer net.Addr) string {
	if exp.client != "" {
		return "overlay " + exp.client
	}
	ip := peer.String()
	if ap, err := netip.ParseAddrPort(ip); err == nil {
		ip = ap.Addr().Unmap().WithZone("").String()
	}
	return "export " + exp.Name + " from " + ip
}

// enter registers a new connection of identity id that will serve be and
// can be closed by kill, fences the identity's other connections, and
// returns the backend the connection must use (it counts the changes in
// flight) and leave, to call once the connection has ended.
func (f *fence) enter(id string, be Backend, kill func()) (Backend, func()) {
	m := &fenceMember{Backend: be, fua: abilitiesOf(be).fua, kill: kill, ops: map[uint64]time.Time{}}
	m.cond.L = &m.mu
	f.mu.Lock()
	others := make([]*fenceMember, 0, len(f.groups[id]))
	for o := range f.groups[id] {
		others = append(others, o)
	}
	if f.groups[id] == nil {
		f.groups[id] = map[*fenceMember]struct{}{}
	}
	f.groups[id][m] = struct{}{}
	f.mu.Unlock()

	f.fenceOthers(id, others)
	leave := func() {
		f.mu.Lock()
		delete(f.groups[id], m)
		if len(f.groups[id]) == 0 {
			delete(f.groups, id)
		}
		f.mu.Unlock()
	}
	return m, leave
}

// fenceOthers waits, within f.wait in all, until the changes the other
// connections had begun have completed; it first closes those holding a
// change older than f.stale, and closes those it gave up waiting for.
func (f *fence) fenceOthers(id string, others []*fenceMember) {
	now := f.now()
	deadline := now.Add(f.wait)
	for _, o := range others {
		o.mu.Lock()
		seq, oldest := o.next, o.oldestLocked()
		o.mu.Unlock()
		if !oldest.IsZero() && now.Sub(oldest) > f.stale {
			f.log.Warn("fence: closing a connection with a change outstanding too long", "identity", id, "age", now.Sub(oldest))
			o.close()
			continue // its stuck change may yet land: see doc.go
		}
		if !o.busyBefore(seq) {
			continue
		}
		if f.onWait != nil {
			f.onWait()
		}
		if !o.waitBefore(seq, deadline) {
			f.log.Warn("fence: gave up waiting for an old connection's changes; closing it", "identity", id, "wait", f.wait)
			o.close()
		}
	}
}

// fenceMember is one connection's backend, counting its changes in flight.
type fenceMember struct {
	Backend
	fua  FUAWriter // the backend's FUA write; nil: write then Sync
	kill func()

	mu   sync.Mutex
	cond sync.Cond // broadcast when a change ends
	next uint64    // sequence number of the next change
	ops  map[uint64]time.Time
	dead bool // closed by the fence: changes refused
}

// begin admits a change; it fails once the connection is dead.
func (m *fenceMember) begin() (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return 0, errFenced
	}
	seq := m.next
	m.next++
	m.ops[seq] = time.Now()
	return seq, nil
}

func (m *fenceMember) end(seq uint64) {
	m.mu.Lock()
	delete(m.ops, seq)
	m.cond.Broadcast()
	m.mu.Unlock()
}

func (m *fenceMember) oldestLocked() time.Time {
	var t time.Time
	for _, s := range m.ops {
		if t.IsZero() || s.Before(t) {
			t = s
		}
	}
	return t
}

func (m *fenceMember) busyBefore(seq uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.busyBeforeLocked(seq)
}

func (m *fenceMember) busyBeforeLocked(seq uint64) bool {
	for s := range m.ops {
		if s < seq {
			return true
		}
	}
	return false
}

// waitBefore waits until the changes numbered below seq have ended, or
// until deadline; it reports whether they have.
func (m *fenceMember) waitBefore(seq uint64, deadline time.Time) bool {
	expired := false
	t := time.AfterFunc(time.Until(deadline), func() {
		m.mu.Lock()
		expired = true
		m.cond.Broadcast()
		m.mu.Unlock()
	})
	defer t.Stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.busyBeforeLocked(seq) && !expired {
		m.cond.Wait()
	}
	return !m.busyBeforeLocked(seq)
}

// close refuses the connection's further changes and closes it.
func (m *fenceMember) close() {
	m.mu.Lock()
	was := m.dead
	m.dead = true
	m.mu.Unlock()
	if !was {
		m.kill()
	}
}

func (m *fenceMember) WriteAt(p []byte, off int64) (int, error) {
	seq, err := m.begin()
	if err != nil {
		return 0, err
	}
	defer m.end(seq)
	return m.Backend.WriteAt(p, off)
}

func (m *fenceMember) Trim(off, length int64) error {
	seq, err := m.begin()
	if err != nil {
		return err
	}
	defer m.end(seq)
	return m.Backend.Trim(off, length)
}

func (m *fenceMember) Zero(off, length int64, noHole, fast bool) error {
	seq, err := m.begin()
	if err != nil {
		return err
	}
	defer m.end(seq)
	return m.Backend.Zero(off, length, noHole, fast)
}

func (m *fenceMember) Sync() error {
	seq, err := m.begin()
	if err != nil {
		return err
	}
	defer m.end(seq)
	return m.Backend.Sync()
}

// WriteAtFUA counts a FUA write as one change: the inner backend's own
// FUA write if it has one, else a write and a Sync.
func (m *fenceMember) WriteAtFUA(p []byte, off int64) error {
	seq, err := m.begin()
	if err != nil {
		return err
	}
	defer m.end(seq)
	if m.fua != nil {
		return m.fua.WriteAtFUA(p, off)
	}
	if _, err := m.Backend.WriteAt(p, off); err != nil {
		return err
	}
	return m.Backend.Sync()
}

// Unwrap implements Wrapper: reads pass through the fence unchanged, so
// the backend's non-blocking reads serve the fenced connection too.
func (m *fenceMember) Unwrap() Backend { return m.Backend }
