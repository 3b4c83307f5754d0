package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/protocol"
)

// patternBase writes a 1 MiB pattern base in a temp dir and opens an
// overlay manager on a state directory beside it.
func patternBase(t *testing.T) (string, *cow.Manager) {
	t.Helper()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	if err := os.WriteFile(base, pattern(0, mib), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := cow.NewManager(cow.Config{Dir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	return base, m
}

// cowTable serves a 1 MiB pattern base as copy-on-write exports "lab"
// (ephemeral) and "q" (quota 16K), logging into the returned buffer.
func cowTable(t *testing.T) (*testServer, *cow.Manager, *testutil.Buffer, chan struct{}) {
	t.Helper()
	base, m := patternBase(t)
	logs := &testutil.Buffer{}
	tab, err := OpenExports([]ExportConfig{
		{Name: "lab", Path: base, COW: COWEphemeral},
		{Name: "q", Path: base, COW: COWPersistent, Quota: 16 << 10},
	}, WithOverlays(m), WithLog(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{}, 64)
	ts := startServer(t, tab, testLimits(), func(s *Server) {
		s.onReleased = func() { released <- struct{}{} }
	})
	t.Cleanup(func() { m.Close(); tab.Close() })
	return ts, m, logs, released
}

// waitReleased waits until n connections have released their exports.
func waitReleased(t *testing.T, released chan struct{}, n int) {
	t.Helper()
	for range n {
		select {
		case <-released:
		case <-time.After(10 * time.Second):
			t.Fatal("a disconnected client's export was not released")
		}
	}
}

// TestCOWPlainNameByIP: plain NAME gives each client IP address its own
// overlay, whatever the source port; NAME/IP is the same overlay.
func TestCOWPlainNameByIP(t *testing.T) {
	ts, m, _, _ := cowTable(t)
	a := goClient(t, ts.addr, "127.0.0.2", "lab")
	b := goClient(t, ts.addr, "127.0.0.3", "lab")
	if a.Negotiated().Flags&protocol.FlagReadOnly != 0 {
		t.Fatal("plain lab negotiated read-only")
	}
	wa, wb := bytes.Repeat([]byte{0xa2}, 4096), bytes.Repeat([]byte{0xa3}, 4096)
	if _, err := a.WriteAt(wa, 4096, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteAt(wb, 4096, protocol.CmdFlagFUA); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	check := func(c *protocol.Client, who string, want []byte) {
		t.Helper()
		got := make([]byte, 3*4096)
		if _, err := c.ReadAt(got, 0); err != nil {
			t.Fatalf("%s: READ: %v", who, err)
		}
		full := append(append(pattern(0, 4096), want...), pattern(8192, 4096)...)
		if !bytes.Equal(got, full) {
			t.Errorf("%s: reads another client's data or the base where it wrote", who)
		}
	}
	check(a, "127.0.0.2", wa)
	check(b, "127.0.0.3", wb)
	a.Disconnect()
	// A reconnect from another port of 127.0.0.2, and the explicit name
	// from its own address; from another address it is refused.
	check(goClient(t, ts.addr, "127.0.0.2", "lab"), "127.0.0.2 again", wa)
	check(goClient(t, ts.addr, "127.0.0.3", "lab/127.0.0.3"), "lab/127.0.0.3", wb)
	if _, err := goClientErr(t, ts.addr, "127.0.0.5", "lab/127.0.0.3"); err == nil || !strings.Contains(err.Error(), "ERR_POLICY") {
		t.Errorf("lab/127.0.0.3 from 127.0.0.5: %v, want ERR_POLICY", err)
	}
	var clients []string
	for _, in := range m.List() {
		clients = append(clients, in.Export+"/"+in.Client)
	}
	if got := strings.Join(clients, " "); got != "lab/127.0.0.2 lab/127.0.0.3" {
		t.Errorf("overlays: %s", got)
	}
	// LIST shows the bases only.
	nc := dialRaw(t, ts.addr)
	list, err := protocol.ClientList(nc.nc)
	if err != nil || len(list) != 2 || list[0].Name != "lab" || list[1].Name != "q" {
		t.Errorf("LIST: %+v, %v", list, err)
	}
}

// TestCOWQuota: the write that would pass the quota gets ENOSPC and
// changes nothing, one log line says so, and overwriting blocks the
// overlay already holds still works.
func TestCOWQuota(t *testing.T) {
	ts, _, logs, _ := cowTable(t)
	c := goClient(t, ts.addr, "", "q/pc1")
	four := bytes.Repeat([]byte{0x44}, 4*4096)
	if _, err := c.WriteAt(four, 0, 0); err != nil {
		t.Fatalf("WRITE of 16K (the quota): %v", err)
	}
	for i := range 2 {
		r, err := c.Do(protocol.Request{Type: protocol.CmdWrite, Cookie: uint64(10 + i), Offset: 8 * 4096, Length: 4096}, four[:4096])
		if err != nil || r.Errno != protocol.Errno(protocol.ENOSPC) {
			t.Fatalf("WRITE past the quota: %+v, %v; want ENOSPC", r, err)
		}
	}
	if n := strings.Count(logs.String(), "overlay quota reached"); n != 1 {
		t.Errorf("%d quota log lines, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "client=pc1") || !strings.Contains(logs.String(), "quota=16384") {
		t.Errorf("quota log line does not name the client and quota:\n%s", logs.String())
	}
	got := make([]byte, 4096)
	if _, err := c.ReadAt(got, 8*4096); err != nil || !bytes.Equal(got, pattern(8*4096, 4096)) {
		t.Errorf("the refused write changed the block (err %v)", err)
	}
	if _, err := c.WriteAt(bytes.Repeat([]byte{0x55}, 4096), 4096, protocol.CmdFlagFUA); err != nil {
		t.Errorf("overwrite within the quota: %v", err)
	}
}

// TestControlSocket lists and resets overlays through the control socket.
func TestControlSocket(t *testing.T) {
	ts, m, _, released := cowTable(t)
	sock := filepath.Join(t.TempDir(), "control.sock")
	ln, err := ListenControl(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode: %v, %v; want 0600", st.Mode(), err)
	}
	if _, err := ListenControl(sock); err == nil || !strings.Contains(err.Error(), "in use by another server") {
		t.Errorf("second ListenControl: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeControl(ctx, ln, m, slogDiscard()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeControl: %v", err)
		}
	}()
	call := func(req ControlRequest) (ControlReply, error) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		return ControlCall(cctx, sock, req)
	}

	pc1 := goClient(t, ts.addr, "", "lab/pc1")
	if _, err := pc1.WriteAt(make([]byte, 8192), 0, protocol.CmdFlagFUA); err != nil {
		t.Fatal(err)
	}
	pc2 := goClient(t, ts.addr, "", "lab/pc2")
	pc2.Disconnect()
	pc3 := goClient(t, ts.addr, "", "q/pc3")
	pc3.Disconnect()
	waitReleased(t, released, 2)

	r, err := call(ControlRequest{Op: "list"})
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, o := range r.Overlays {
		rows = append(rows, o.Export+"/"+o.Client+" "+itoa(o.Size)+" "+itoa(int64(o.Connections))+" "+map[bool]string{true: "persistent", false: "ephemeral"}[o.Persistent])
		if o.LastUse.IsZero() {
			t.Errorf("%s/%s: no last use", o.Export, o.Client)
		}
	}
	if got := strings.Join(rows, ", "); got != "lab/pc1 8192 1 ephemeral, lab/pc2 0 0 ephemeral, q/pc3 0 0 persistent" {
		t.Errorf("list: %s", got)
	}

	// pc1 is connected: refused. pc2 is not: deleted.
	if _, err := call(ControlRequest{Op: "reset", Export: "lab", Client: "pc1"}); err == nil || !strings.Contains(err.Error(), cow.ErrBusy.Error()) {
		t.Errorf("reset of a connected overlay: %v, want %v", err, cow.ErrBusy)
	}
	if r, err := call(ControlRequest{Op: "reset", Export: "lab", Client: "pc2"}); err != nil || r.Reset != 1 {
		t.Errorf("reset lab/pc2: %+v, %v", r, err)
	}
	if _, err := call(ControlRequest{Op: "reset", Export: "lab", Client: "pc2"}); err == nil || !strings.Contains(err.Error(), cow.ErrNoOverlay.Error()) {
		t.Errorf("second reset of lab/pc2: %v", err)
	}
	// Reset all of q; then all of lab leaves pc1 and says so.
	if r, err := call(ControlRequest{Op: "reset", Export: "q"}); err != nil || r.Reset != 1 {
		t.Errorf("reset q: %+v, %v", r, err)
	}
	pc1.Disconnect()
	waitReleased(t, released, 1)
	if r, err := call(ControlRequest{Op: "reset", Export: "lab"}); err != nil || r.Reset != 1 {
		t.Errorf("reset lab after pc1 left: %+v, %v", r, err)
	}
	if r, err := call(ControlRequest{Op: "list"}); err != nil || len(r.Overlays) != 0 {
		t.Errorf("list after resets: %+v, %v", r, err)
	}
	// The next connection of pc1 starts from the base.
	got := make([]byte, 4096)
	if _, err := goClient(t, ts.addr, "", "lab/pc1").ReadAt(got, 0); err != nil || !bytes.Equal(got, pattern(0, 4096)) {
		t.Errorf("pc1 after reset does not read the base: %v", err)
	}
	for _, bad := range []ControlRequest{{Op: "frobnicate"}, {Op: "reset"}} {
		if _, err := call(bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestCOWGraceOption: an export's grace= sets how long its ephemeral
// overlays outlive their client; without it the Manager's default holds.
func TestCOWGraceOption(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	os.WriteFile(base, pattern(0, 64<<10), 0o644)
	m, err := cow.NewManager(cow.Config{Dir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	tab, err := OpenExports([]ExportConfig{
		{Name: "g", Path: base, COW: COWEphemeral, Grace: Duration(7 * time.Minute)},
		{Name: "d", Path: base, COW: COWEphemeral},
	}, WithOverlays(m))
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{}, 4)
	ts := startServer(t, tab, testLimits(), func(s *Server) { s.onReleased = func() { released <- struct{}{} } })
	t.Cleanup(func() { m.Close(); tab.Close() })
	for _, name := range []string{"g/pc1", "d/pc1"} {
		goClient(t, ts.addr, "", name).Disconnect()
		waitReleased(t, released, 1)
	}
	// The overlays' meta data record the grace their idle timers use
	// (the timers themselves are tested in package cow).
	for _, c := range []struct {
		export string
		want   time.Duration
	}{{"g", 7 * time.Minute}, {"d", cow.DefaultGrace}} {
		b, err := os.ReadFile(filepath.Join(dir, "state", c.export, "pc1", "meta.json"))
		if err != nil {
			t.Fatal(err)
		}
		var md struct {
			Grace time.Duration `json:"grace_ns"`
		}
		if err := json.Unmarshal(b, &md); err != nil {
			t.Fatal(err)
		}
		if md.Grace != c.want {
			t.Errorf("overlay of export %s: grace %v, want %v", c.export, md.Grace, c.want)
		}
	}
}
