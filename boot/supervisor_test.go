package boot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSupervisorLinkDead(t *testing.T) {
	lines := make(lineWriter, 100)
	events := make(chan LinkDead)
	reconnected := make(chan State, 1)
	s := &Supervisor{
		State: State{Index: 1, Device: "/dev/nbd1", BackendID: "nbd://h:10809/root", Connections: 1},
		Log:   NewLogger(lines, newFakeClock()),
		Watch: func(ctx context.Context) (<-chan LinkDead, error) { return events, nil },
		Reconnect: func(ctx context.Context, st State) error {
			reconnected <- st
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	if l := <-lines; !strings.Contains(l, "supervisor: resident for /dev/nbd1") {
		t.Errorf("first line %q", l)
	}
	events <- LinkDead{Index: 0} // another device: ignored
	events <- LinkDead{Index: 1}
	if st := <-reconnected; st.Device != "/dev/nbd1" {
		t.Errorf("reconnected %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestSupervisorWithoutWatch(t *testing.T) {
	var buf bytes.Buffer
	s := &Supervisor{State: State{Device: "/dev/nbd0"}, Log: NewLogger(&buf, newFakeClock()),
		Watch: func(ctx context.Context) (<-chan LinkDead, error) { return nil, errors.New("no nbd family") }}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "LINK_DEAD subscription: no nbd family") {
		t.Errorf("log:\n%s", buf.String())
	}
}

func TestShellFind(t *testing.T) {
	dir := t.TempDir()
	sh := filepath.Join(dir, "gosh")
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(sh, []byte("#!"), 0o755)
	os.WriteFile(noexec, []byte("#!"), 0o644)
	s := ConsoleShell{Candidates: []string{filepath.Join(dir, "missing"), noexec, dir, sh}}
	if got, err := s.Find(); err != nil || got != sh {
		t.Errorf("Find = %q, %v", got, err)
	}
	s.Candidates = s.Candidates[:3]
	if _, err := s.Find(); !errors.Is(err, ErrNoShell) {
		t.Errorf("Find = %v, want ErrNoShell", err)
	}
}
