package boot

import (
	"context"
	"fmt"
	"strings"

	"github.com/nbdboot/nbdboot/netcfg"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NetcfgNetwork adapts package netcfg: it parses the ip= values and
// configures the links, DHCP included.
type NetcfgNetwork struct {
	Log *Logger
}

// Up configures the network. A malformed ip= is a command-line error,
// returned as *Error so that it is not retried.
func (n NetcfgNetwork) Up(ctx context.Context, ip []string) (NetInfo, error) {
	ips, err := netcfg.ParseIPs(ip)
	if err != nil {
		return NetInfo{}, fail("cmdline", err, hintCmdline)
	}
	cfg := netcfg.Config{IP: ips}
	// Only the route family: a handle for every family fails on kernels
	// with xfrm_user as a module (EPROTONOSUPPORT).
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return NetInfo{}, fmt.Errorf("open rtnetlink: %w", err)
	}
	defer h.Close()
	opts := []netcfg.Option{netcfg.WithHandle(h)}
	if n.Log != nil {
		opts = append(opts, netcfg.WithLogf(func(format string, args ...any) {
			n.Log.Debugf(strings.TrimPrefix(format, "netcfg: "), args...)
		}))
	}
	res, err := netcfg.Configure(ctx, cfg, opts...)
	if err != nil {
		return NetInfo{}, err
	}
	ni := NetInfo{Interface: res.Interface, Index: res.Index, MAC: res.MAC.String(), RootPath: res.RootPath, Method: "none"}
	for _, a := range res.Addrs {
		ni.Addrs = append(ni.Addrs, a.String())
	}
	if res.Gateway.IsValid() {
		ni.Gateway = res.Gateway.String()
	}
	if len(res.Links) > 0 {
		ni.Method = res.Links[0].Method.String()
	}
	if n.Log != nil {
		for _, t := range res.Timings {
			n.Log.Debugf("network: %s took %.3fs", t.Phase, t.Duration.Seconds())
		}
	}
	return ni, nil
}
