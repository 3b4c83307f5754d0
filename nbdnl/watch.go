package nbdnl

import (
	"context"
	"errors"
	"fmt"

	"github.com/mdlayher/genetlink"
	"golang.org/x/sys/unix"
)

// WatchLinkDead joins the nbd multicast group on a socket of its own and
// delivers the index of every device the kernel reports with LINK_DEAD (a
// socket of that device died; I/O now waits up to its dead-connection
// timeout for a RECONFIGURE). The channel is closed when ctx is done or
// the socket fails. Notifications lost to a receive-buffer overrun
// (ENOBUFS) cannot be recovered, so a supervisor should also react to I/O
// errors and check devices after the channel closes.
func (c *Conn) WatchLinkDead(ctx context.Context) (<-chan uint32, error) {
	var group uint32
	var found bool
	for _, g := range c.family.Groups {
		if g.Name == MulticastGroup {
			group, found = g.ID, true
		}
	}
	if !found {
		return nil, fmt.Errorf("watch nbd link-dead: family %q has no multicast group %q", FamilyName, MulticastGroup)
	}
	w, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("watch nbd link-dead: open generic netlink socket: %w", err)
	}
	if err := w.JoinGroup(group); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch nbd link-dead: join multicast group %q: %w", MulticastGroup, err)
	}
	out := make(chan uint32, 16)
	stop := context.AfterFunc(ctx, func() { w.Close() }) // unblocks Receive
	go func() {
		defer close(out)
		watchLoop(ctx, func() ([]genetlink.Message, error) {
			m, _, err := w.Receive()
			return m, err
		}, out)
		if stop() {
			w.Close()
		}
	}()
	return out, nil
}

// watchLoop receives notifications until ctx is done or receive fails for
// good, sending LINK_DEAD indexes to out. Malformed notifications are
// skipped: they come from the kernel, and a broken one must not stop the
// supervisor.
func watchLoop(ctx context.Context, receive func() ([]genetlink.Message, error), out chan<- uint32) {
	for ctx.Err() == nil {
		msgs, err := receive()
		if errors.Is(err, unix.ENOBUFS) {
			continue // overrun: some notifications were dropped
		}
		if err != nil {
			return
		}
		for _, m := range msgs {
			idx, ok := decodeLinkDead(m)
			if !ok {
				continue
			}
			select {
			case out <- idx:
			case <-ctx.Done():
				return
			}
		}
	}
}

// decodeLinkDead returns the device index of a LINK_DEAD notification.
func decodeLinkDead(m genetlink.Message) (uint32, bool) {
	if m.Header.Command != CmdLinkDead {
		return 0, false
	}
	idx, err := decodeIndex(m.Data)
	return idx, err == nil
}
