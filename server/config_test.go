package server

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/cow"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nbdserve.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	p := writeConfig(t, `
listen = "127.0.0.1:10810"
state_dir = "/var/lib/nbdserve"

[limits]
handshake_timeout = "5s"
max_negotiating = 8
max_connections = 100
max_inflight = 32
max_buffer_bytes = 67108864
shutdown_grace = "1s"
reply_timeout = "30s"
stall_timeout = "3s"
overlay_linger = "2m"
max_idle_overlays = 40

[[export]]
name = "root"
path = "/srv/root.img"
readonly = true
description = "Debian 12, comma, and all"

[[export]]
name = "scratch"
path = "/dev/sdb"

[[export]]
name = "lab"
path = "/srv/lab.img"
cow = "persistent"
`)
	got, err := LoadConfig(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen:   "127.0.0.1:10810",
		StateDir: "/var/lib/nbdserve",
		Limits: Limits{HandshakeTimeout: 5 * time.Second, MaxNegotiating: 8, MaxConnections: 100,
			MaxInFlight: 32, MaxBufferBytes: 64 << 20, ReplyTimeout: 30 * time.Second, StallTimeout: 3 * time.Second, ShutdownGrace: time.Second,
			OverlayLinger: 2 * time.Minute, MaxIdleOverlays: 40},
		Exports: []ExportConfig{
			{Name: "root", Path: "/srv/root.img", ReadOnly: true, Description: "Debian 12, comma, and all"},
			{Name: "scratch", Path: "/dev/sdb"},
			{Name: "lab", Path: "/srv/lab.img", COW: "persistent"},
		},
	}
	if got.Listen != want.Listen || got.StateDir != want.StateDir || got.Limits != want.Limits ||
		!reflect.DeepEqual(got.Exports, want.Exports) {
		t.Errorf("LoadConfig =\n%+v\nwant\n%+v", got, want)
	}

	// Defaults fill what the file leaves out.
	p = writeConfig(t, "[[export]]\nname = \"a\"\npath = \"/x\"\n")
	got, err = LoadConfig(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Listen != ":10809" || got.Limits != DefaultLimits() {
		t.Errorf("defaults: got listen %q limits %+v", got.Listen, got.Limits)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name, text, wantErr string
	}{
		{"unknown top key", "lisen = \":1\"\n", "unknown key lisen"},
		{"unknown export key", "[[export]]\nname=\"a\"\npath=\"/x\"\nsnapshot=true\n", "unknown key export.snapshot"},
		{"bad cow", "[[export]]\nname=\"a\"\npath=\"/x\"\ncow=\"yes\"\n", `export #1: export "a": cow="yes", want ephemeral or persistent`},
		{"unknown limit", "[limits]\nmax_foo = 1\n", "unknown key limits.max_foo"},
		{"duplicate export", "[[export]]\nname=\"a\"\npath=\"/x\"\n[[export]]\nname=\"a\"\npath=\"/y\"\n", `export "a": defined twice`},
		{"empty name", "[[export]]\npath=\"/x\"\n", "export #1: export name is empty"},
		{"empty path", "[[export]]\nname=\"a\"\n", `export #1: export "a": empty path`},
		{"bad duration", "[limits]\nhandshake_timeout = \"soon\"\n", "handshake_timeout"},
		{"zero timeout", "[limits]\nhandshake_timeout = \"0s\"\n", "limits.handshake_timeout: 0s, want > 0"},
		{"zero inflight", "[limits]\nmax_inflight = 0\n", "limits.max_inflight: 0, want >= 1"},
		{"tiny buffer", "[limits]\nmax_buffer_bytes = 100\n", "limits.max_buffer_bytes: 100, want >= 1048576"},
		{"negative reply timeout", "[limits]\nreply_timeout = \"-1s\"\n", "limits.reply_timeout: -1s, want >= 0"},
		{"negotiating", "[limits]\nmax_negotiating = 0\n", "limits.max_negotiating: 0, want >= 1"},
		{"negative linger", "[limits]\noverlay_linger = \"-1s\"\n", "limits.overlay_linger: -1s, want >= 0"},
		{"no idle overlays", "[limits]\nmax_idle_overlays = 0\n", "limits.max_idle_overlays: 0, want >= 1"},
		{"wrong type", "listen = 5\n", "listen"},
		{"syntax", "listen = \n", "config"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.text)
			_, err := LoadConfig(p, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), p) {
				t.Errorf("LoadConfig: %v; want an error naming %s and containing %q", err, p, tt.wantErr)
			}
		})
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.toml"), nil); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestOpenExportsErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.img")
	os.WriteFile(good, make([]byte, 4096), 0o644)
	for _, tt := range []struct {
		name    string
		cfgs    []ExportConfig
		wantErr string
	}{
		{"missing", []ExportConfig{{Name: "a", Path: filepath.Join(dir, "nope.img")}}, `export "a": open ` + filepath.Join(dir, "nope.img") + ": no such file or directory"},
		{"directory", []ExportConfig{{Name: "a", Path: dir}}, "is a directory"},
		{"char device", []ExportConfig{{Name: "n", Path: "/dev/null"}}, `export "n": /dev/null: not a regular file or block device`},
		{"duplicate", []ExportConfig{{Name: "a", Path: good}, {Name: "a", Path: good}}, `export "a": defined twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := OpenExports(tt.cfgs)
			if err == nil {
				tab.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("OpenExports: %v; want %q", err, tt.wantErr)
			}
		})
	}
}

// TestLoadConfigSections: a section another package owns decodes into
// its value; its unknown keys are errors like the server's own, and
// without the section the table is an unknown key.
func TestLoadConfigSections(t *testing.T) {
	type pxe struct {
		Interface string `toml:"interface"`
	}
	p := filepath.Join(t.TempDir(), "c.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("[pxe]\ninterface = \"br0\"\n")
	var got pxe
	if _, err := LoadConfig(p, map[string]any{"pxe": &got}); err != nil {
		t.Fatal(err)
	}
	if got.Interface != "br0" {
		t.Errorf("[pxe] interface = %q, want br0", got.Interface)
	}
	if _, err := LoadConfig(p, nil); err == nil || !strings.Contains(err.Error(), "unknown key pxe") {
		t.Errorf("without the section: err = %v, want unknown key pxe", err)
	}
	write("[pxe]\ninterfce = \"br0\"\n")
	if _, err := LoadConfig(p, map[string]any{"pxe": &got}); err == nil || !strings.Contains(err.Error(), "unknown key pxe.interfce") {
		t.Errorf("misspelt key: err = %v, want unknown key pxe.interfce", err)
	}
}

// TestOverlayConfig: the limits' linger and idle cap reach the overlay
// Manager's configuration; a linger of 0 is the Manager's "close at
// once", not its default.
func TestOverlayConfig(t *testing.T) {
	l := DefaultLimits()
	if c := l.OverlayConfig("/state", nil); c.Dir != "/state" || c.Linger != cow.DefaultLinger || c.MaxIdleOpen != cow.DefaultMaxIdleOpen {
		t.Errorf("defaults: %+v", c)
	}
	l.OverlayLinger, l.MaxIdleOverlays = 0, 3
	if c := l.OverlayConfig("/state", nil); c.Linger >= 0 || c.MaxIdleOpen != 3 {
		t.Errorf("linger 0, 3 idle: Linger %v, MaxIdleOpen %d; want negative (close at once), 3", c.Linger, c.MaxIdleOpen)
	}
}
