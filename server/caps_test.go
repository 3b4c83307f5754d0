package server

import (
	"os"
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/protocol"
)

// TestOverlayCaps: past max_overlays_per_address (in use at once),
// max_overlays (kept) and new_overlays_per_minute, a client is refused at
// the handshake with ERR_POLICY naming the cap; overlays that exist stay
// reachable.
func TestOverlayCaps(t *testing.T) {
	base, m := patternBase(t)
	tab, err := OpenExports([]ExportConfig{
		{Name: "lab", Path: base, COW: COWEphemeral, MaxOverlaysPerAddress: 2, MaxOverlays: 3},
		{Name: "slow", Path: base, COW: COWEphemeral, NewOverlaysPerMinute: 2},
	}, WithOverlays(m))
	if err != nil {
		t.Fatal(err)
	}
	ts, released, refused := policyServer(t, tab, m)
	a := goClient(t, ts.addr, "127.0.0.2", "lab/a")
	b := goClient(t, ts.addr, "127.0.0.2", "lab/b")
	refused("127.0.0.2", "lab/c", "max_overlays_per_address")
	goClient(t, ts.addr, "127.0.0.2", "lab/a").Disconnect() // one it uses already
	waitReleased(t, released, 1)
	c := goClient(t, ts.addr, "127.0.0.3", "lab/c")
	refused("127.0.0.4", "lab/d", "max_overlays")
	for _, cl := range []*protocol.Client{a, b, c} {
		cl.Disconnect()
	}
	waitReleased(t, released, 3)
	goClient(t, ts.addr, "127.0.0.4", "lab/a").Disconnect() // existing overlays stay reachable

	goClient(t, ts.addr, "127.0.0.2", "slow/1").Disconnect()
	goClient(t, ts.addr, "127.0.0.3", "slow/2").Disconnect()
	refused("127.0.0.4", "slow/3", "new_overlays_per_minute")
}

// TestOverlayRefusedAtHandshake: a persistent overlay made over a base
// that a reload replaced is refused during the handshake, with the
// reason in the NBD error the client sees, not after GO was accepted.
func TestOverlayRefusedAtHandshake(t *testing.T) {
	base, m := patternBase(t)
	cfgs := []ExportConfig{{Name: "lab", Path: base, COW: COWPersistent}}
	tab, err := OpenExports(cfgs, WithOverlays(m))
	if err != nil {
		t.Fatal(err)
	}
	ts, released, _ := policyServer(t, tab, m)
	c := goClient(t, ts.addr, "127.0.0.2", "lab/pc1")
	if _, err := c.WriteAt(make([]byte, 4096), 0, protocol.CmdFlagFUA); err != nil {
		t.Fatal(err)
	}
	c.Disconnect()
	waitReleased(t, released, 1)
	tmp := base + ".new"
	if err := os.WriteFile(tmp, pattern(1, mib), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, base); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tab.Update(cfgs); err != nil {
		t.Fatal(err)
	}
	_, err = goClientErr(t, ts.addr, "127.0.0.2", "lab/pc1")
	if err == nil || !strings.Contains(err.Error(), "option GO") || !strings.Contains(err.Error(), "reset it") {
		t.Errorf("persistent overlay over the replaced base: %v; want GO refused, saying to reset it", err)
	}
}
