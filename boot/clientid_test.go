package boot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/protocol"
)

// unknownExport is what protocol.ClientHandshake returns for ERR_UNKNOWN.
func unknownExport(name string) error {
	return fmt.Errorf("export %q: %w", name, &protocol.OptionError{Option: protocol.OptGo, Reply: protocol.RepErrUnknown,
		Message: "not a copy-on-write export"})
}

// plainServer makes the fake server answer "unknown export" for names
// holding a '/', as nbd-server or a plain nbdserve export does.
func plainServer(w *world) {
	w.env.Negotiate = func(ctx context.Context, conn net.Conn, req NegotiateRequest) (protocol.ExportInfo, error) {
		if strings.Contains(req.Name(), "/") {
			w.tr.add("negotiate %q unknown", req.Name())
			return protocol.ExportInfo{}, unknownExport(req.Name())
		}
		return w.server.negotiate(ctx, conn, req)
	}
}

// negotiations lists the negotiate events of the trace.
func negotiations(w *world) []string {
	var out []string
	for _, e := range w.tr.list() {
		if strings.HasPrefix(e, "negotiate ") {
			out = append(out, strings.TrimPrefix(e, "negotiate "))
		}
	}
	return out
}

func TestClientIDExportName(t *testing.T) {
	const mac = "52:54:00:12:34:56"
	for _, tc := range []struct {
		name     string
		clientID string // nbdboot.clientid
		mac      string // of the boot interface
		export   string // in nbdroot=
		plain    bool   // the server refuses NAME/CLIENT-ID
		conns    int
		want     []string // negotiations, in order
		backend  string   // the attached backend id (and the state's)
		fellBack bool     // the log tells of the fallback
	}{
		{name: "MAC by default", mac: mac, export: "root", conns: 1,
			want:    []string{`"root/52:54:00:12:34:56"`},
			backend: "nbd://10.0.2.2:10809/root/52:54:00:12:34:56"},
		{name: "MAC in lower case", mac: "52:54:00:AB:CD:EF", export: "root", conns: 1,
			want:    []string{`"root/52:54:00:ab:cd:ef"`},
			backend: "nbd://10.0.2.2:10809/root/52:54:00:ab:cd:ef"},
		{name: "explicit id", clientID: "pc-17.lab", mac: mac, export: "root", conns: 1,
			want:    []string{`"root/pc-17.lab"`},
			backend: "nbd://10.0.2.2:10809/root/pc-17.lab"},
		{name: "none", clientID: ClientIDNone, mac: mac, export: "root", conns: 1,
			want:    []string{`"root"`},
			backend: "nbd://10.0.2.2:10809/root"},
		{name: "no MAC", export: "root", conns: 1,
			want:    []string{`"root"`},
			backend: "nbd://10.0.2.2:10809/root"},
		{name: "export names its client", mac: mac, export: "root/teacher", conns: 1,
			want:    []string{`"root/teacher"`},
			backend: "nbd://10.0.2.2:10809/root/teacher"},
		{name: "fallback to plain", mac: mac, export: "root", plain: true, conns: 1,
			want:    []string{`"root/52:54:00:12:34:56" unknown`, `"root"`},
			backend: "nbd://10.0.2.2:10809/root", fellBack: true},
		// The extra connections ask for the name the first one got.
		{name: "multi-conn", mac: mac, export: "root", conns: 3,
			want:    []string{`"root/52:54:00:12:34:56"`, `"root/52:54:00:12:34:56"`, `"root/52:54:00:12:34:56"`},
			backend: "nbd://10.0.2.2:10809/root/52:54:00:12:34:56"},
		{name: "multi-conn after fallback", mac: mac, export: "root", plain: true, conns: 2,
			want:    []string{`"root/52:54:00:12:34:56" unknown`, `"root"`, `"root"`},
			backend: "nbd://10.0.2.2:10809/root", fellBack: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			w.net.info.MAC = tc.mac
			w.cfg.ClientID = tc.clientID
			w.cfg.Connections = tc.conns
			w.cfg.NBD.Export = tc.export
			if tc.plain {
				plainServer(w)
			}
			if _, err := Run(context.Background(), w.env); !errors.Is(err, errExeced) {
				t.Fatalf("Run = %v; log:\n%s", err, w.log)
			}
			if got := negotiations(w); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("negotiated\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if w.dev.req.BackendID != tc.backend || len(w.dev.req.Conns) != tc.conns {
				t.Errorf("attached %s with %d connections, want %s with %d", w.dev.req.BackendID, len(w.dev.req.Conns), tc.backend, tc.conns)
			}
			st, err := UnmarshalState(w.fs.files[StatePath])
			if err != nil {
				t.Fatal(err)
			}
			// The supervisor reconnects to st.Target: the same overlay.
			if st.BackendID != tc.backend || st.Target.String() != tc.backend {
				t.Errorf("state: backend %s, target %s; want %s", st.BackendID, st.Target.String(), tc.backend)
			}
			if st.Servers[0].Export != tc.export {
				t.Errorf("state servers[0].export = %q, want the configured %q", st.Servers[0].Export, tc.export)
			}
			const fallback = `connect: 10.0.2.2:10809 does not know export "root/52:54:00:12:34:56" (not a copy-on-write export); falling back to the plain export "root"`
			if n := strings.Count(w.log.String(), fallback); n != map[bool]int{true: 1}[tc.fellBack] {
				t.Errorf("log tells of the fallback %d times, want %v:\n%s", n, tc.fellBack, w.log)
			}
		})
	}
}

// TestClientIDFallbackOnce: a plain server that is down at first: the
// fallback is found once and kept across the retries, and the final
// message names the plain export.
func TestClientIDFallbackOnce(t *testing.T) {
	w := newWorld()
	w.net.info.MAC = "52:54:00:12:34:56"
	plainServer(w)
	var calls int
	inner := w.env.Negotiate
	w.env.Negotiate = func(ctx context.Context, conn net.Conn, req NegotiateRequest) (protocol.ExportInfo, error) {
		calls++
		if calls <= 4 { // the server answers but is not ready: a transient error
			if strings.Contains(req.Name(), "/") {
				return inner(ctx, conn, req)
			}
			w.tr.add("negotiate %q shutdown", req.Name())
			return protocol.ExportInfo{}, fmt.Errorf("export %q: %w", req.Name(), &protocol.OptionError{Option: protocol.OptGo, Reply: protocol.RepErrShutdown})
		}
		return inner(ctx, conn, req)
	}
	if _, err := Run(context.Background(), w.env); !errors.Is(err, errExeced) {
		t.Fatalf("Run = %v; log:\n%s", err, w.log)
	}
	want := []string{`"root/52:54:00:12:34:56" unknown`, `"root" shutdown`, `"root" shutdown`, `"root" shutdown`, `"root"`}
	if got := negotiations(w); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("negotiated\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := strings.Count(w.log.String(), "falling back"); n != 1 {
		t.Errorf("log tells of the fallback %d times, want once:\n%s", n, w.log)
	}
}

// TestClientIDNoFallbackOnOtherErrors: only "unknown export" means the
// server does not know NAME/CLIENT-ID; a refusal for another reason
// (policy, a full quota on the server's side) must not silently put the
// client on the shared plain export.
func TestClientIDNoFallbackOnOtherErrors(t *testing.T) {
	w := newWorld()
	w.net.info.MAC = "52:54:00:12:34:56"
	w.env.Negotiate = func(ctx context.Context, conn net.Conn, req NegotiateRequest) (protocol.ExportInfo, error) {
		w.tr.add("negotiate %q policy", req.Name())
		return protocol.ExportInfo{}, fmt.Errorf("export %q: %w", req.Name(), &protocol.OptionError{Option: protocol.OptGo, Reply: protocol.RepErrPolicy})
	}
	_, err := Run(context.Background(), w.env)
	var be *Error
	if !errors.As(err, &be) || be.Phase != "connect" {
		t.Fatalf("Run = %v, want a connect failure", err)
	}
	for _, n := range negotiations(w) {
		if n != `"root/52:54:00:12:34:56" policy` {
			t.Errorf("negotiated %s, want only root/52:54:00:12:34:56", n)
		}
	}
	if !strings.Contains(err.Error(), `"root/52:54:00:12:34:56"`) {
		t.Errorf("error %q does not name the export asked for", err)
	}
}

func TestNegotiateRequestName(t *testing.T) {
	for _, tc := range []struct {
		req  NegotiateRequest
		want string
	}{
		{NegotiateRequest{Export: "root", ClientID: "52:54:00:12:34:56"}, "root/52:54:00:12:34:56"},
		{NegotiateRequest{Export: "root"}, "root"},
		{NegotiateRequest{Export: "", ClientID: "pc17"}, "/pc17"},
	} {
		if got := tc.req.Name(); got != tc.want {
			t.Errorf("%+v.Name() = %q, want %q", tc.req, got, tc.want)
		}
	}
}
