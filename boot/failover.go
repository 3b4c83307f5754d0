package boot

import (
	"fmt"
	"strings"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/protocol"
)

// Failover policy. Several servers may be given for one root
// (nbd://srv1,srv2/export or repeated nbdroot=); the boot uses the first
// that answers. On a reconnect the supervisor tries the current server
// first, then the others in order, but only when switching cannot lose
// or mix data:
//
//   - a read-only export (NBD_FLAG_READ_ONLY): every server serves the
//     same bytes, nothing was written;
//   - a client-side overlay (nbdboot.overlay=tmpfs): the device is only
//     read, the writes live in the client's memory.
//
// A writable export is never failed over. Writes the old server
// acknowledged may not have reached the other server (replication is the
// servers' business and not visible in NBD), and with server-side
// copy-on-write (nbdserve's per-client overlays) the writes live on the
// old server only: the new server would hand out the base image under a
// filesystem whose journal and caches describe the overlay, which
// corrupts it silently. Waiting for the same server (I/O is queued up to
// nbdboot.deadconn) is the only safe choice there.
func failoverPolicy(st State) (allowed bool, why string) {
	switch {
	case len(st.Servers) < 2:
		return false, "one server"
	case st.ServerFlags&protocol.FlagReadOnly != 0:
		return true, "read-only export"
	case st.Overlay != "":
		return true, fmt.Sprintf("client-side %s overlay", st.Overlay)
	}
	return false, "writable export without a client-side overlay: its writes may exist on the current server only"
}

// candidates lists the servers a reconnect tries, the current one first,
// then (when failover is allowed) the others in the configured order.
// The current one is asked for exactly the export name the boot
// negotiated (NAME/CLIENT-ID picks the client's overlay on the server:
// never fall back to the plain NAME there, which would swap the overlay
// for the base image); the others for their NAME with the same client id.
func candidates(st State, failover bool) []bootcfg.Address {
	out := []bootcfg.Address{st.Target}
	if !failover {
		return out
	}
	suffix := ""
	for _, t := range st.Servers {
		if t.Addr() == st.Target.Addr() && strings.HasPrefix(st.Target.Export, t.Export+"/") {
			suffix = strings.TrimPrefix(st.Target.Export, t.Export)
		}
	}
	for _, t := range st.Servers {
		if t.Addr() == st.Target.Addr() {
			continue
		}
		t.Export += suffix
		out = append(out, t)
	}
	return out
}
