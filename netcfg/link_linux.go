package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// autoCandidate reports whether the kernel's ipconfig would try l when no
// device is named: not loopback, broadcast or point-to-point, not dummy.
func autoCandidate(l netlink.Link) bool {
	a := l.Attrs()
	return a.Flags&net.FlagLoopback == 0 &&
		a.Flags&(net.FlagBroadcast|net.FlagPointToPoint) != 0 &&
		!strings.HasPrefix(a.Name, "dummy")
}

func hasCarrier(l netlink.Link) bool {
	a := l.Attrs()
	return a.Flags&net.FlagUp != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0
}

// upLinks brings lo and the links up and waits until one of them has
// carrier; it returns that one (the first to report carrier; among links that
// already have it, the lowest index). The wait subscribes to link updates in
// the calling thread's network namespace, so h must be a handle on the same
// namespace.
func upLinks(ctx context.Context, h *netlink.Handle, links []netlink.Link) (netlink.Link, error) {
	if len(links) == 0 {
		return nil, errors.New("no network links to configure")
	}
	names := make([]string, len(links))
	want := map[int]bool{}
	for i, l := range links {
		names[i] = l.Attrs().Name
		want[l.Attrs().Index] = true
	}
	what := strings.Join(names, ", ")

	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	subErr := make(chan error, 1)
	defer func() {
		close(done)
		for range updates { // let the subscription goroutine exit
		}
	}()
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case subErr <- err:
			default:
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to link updates: %w", err)
	}
	if err := setUp(h, "lo"); err != nil {
		return nil, err
	}
	for _, l := range links {
		if err := h.LinkSetUp(l); err != nil {
			return nil, fmt.Errorf("set link %s up: %w", l.Attrs().Name, err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for carrier on %s: %w", what, ctx.Err())
		case err := <-subErr:
			return nil, fmt.Errorf("wait for carrier on %s: link updates: %w", what, err)
		case u, ok := <-updates:
			if !ok {
				return nil, fmt.Errorf("wait for carrier on %s: link update subscription closed", what)
			}
			if u.Header.Type == unix.RTM_NEWLINK && want[u.Attrs().Index] && hasCarrier(u.Link) {
				return u.Link, nil
			}
		}
	}
}

func setUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set link %s up: %w", name, err)
	}
	return nil
}

// pickLinks resolves an ip= device: the named link, or every auto candidate
// not in taken.
func pickLinks(h *netlink.Handle, device string, taken map[string]bool) ([]netlink.Link, error) {
	if device != "" {
		l, err := h.LinkByName(device)
		if err != nil {
			return nil, fmt.Errorf("ip= device %s: %w", device, err)
		}
		return []netlink.Link{l}, nil
	}
	all, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []netlink.Link
	for _, l := range all {
		if autoCandidate(l) && !taken[l.Attrs().Name] {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no network link to configure (no broadcast-capable, non-loopback link)")
	}
	return out, nil
}
