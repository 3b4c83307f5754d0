package server

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/protocol"
)

func TestSplitVersion(t *testing.T) {
	for _, tt := range []struct {
		in, base, version string
		ok                bool
	}{
		{"lab@0123456789ab", "lab", "0123456789ab", true},
		{"lab/52:54:00:12:34:56@0123456789ab", "lab/52:54:00:12:34:56", "0123456789ab", true},
		{"a@b@0123456789ab", "a@b", "0123456789ab", true},
		{"lab", "lab", "", false},
		{"lab@", "lab@", "", false},
		{"lab@0123456789a", "lab@0123456789a", "", false},     // 11 digits
		{"lab@0123456789abc", "lab@0123456789abc", "", false}, // 13
		{"lab@0123456789AB", "lab@0123456789AB", "", false},   // upper case is not ours
		{"lab@0123456789ag", "lab@0123456789ag", "", false},
	} {
		base, version, ok := splitVersion(tt.in)
		if base != tt.base || version != tt.version || ok != tt.ok {
			t.Errorf("splitVersion(%q) = %q, %q, %v; want %q, %q, %v", tt.in, base, version, ok, tt.base, tt.version, tt.ok)
		}
	}
}

// writeImage replaces path with a file of n bytes of b, by rename, as an
// administrator updates an image.
func writeImage(t *testing.T, path string, b byte, n int) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, bytes.Repeat([]byte{b}, n), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// readFirst acquires name and returns its first byte.
func readFirst(t *testing.T, tab *Exports, name string) (byte, error) {
	t.Helper()
	info, err := tab.Export(name)
	if err != nil {
		return 0, err
	}
	e, release, err := tab.AcquireFrom(info, nil)
	if err != nil {
		return 0, err
	}
	defer release()
	var p [1]byte
	if _, err := e.Backend.ReadAt(p[:], 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return p[0], nil
}

// TestImageVersions: an image replaced by rename and reloaded is served
// to new names, while NAME@VERSION keeps reaching the old file during the
// grace period; afterwards, and after a restart, the old version is
// refused with a message, never served from the new file.
func TestImageVersions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "lab.img")
		writeImage(t, path, 'A', 4096)
		cfgs := []ExportConfig{{Name: "lab", Path: path, ReadOnly: true}}
		tab, err := OpenExports(cfgs, WithVersionGrace(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		defer tab.Close()
		info, err := tab.Export("lab")
		if err != nil {
			t.Fatal(err)
		}
		base, v1, ok := splitVersion(info.Canonical)
		if !ok || base != "lab" {
			t.Fatalf("canonical name %q, want lab@VERSION", info.Canonical)
		}
		if i, _ := tab.Export(""); i.Canonical != info.Canonical {
			t.Errorf("the empty name's canonical name %q, want %q", i.Canonical, info.Canonical)
		}
		// A connection of the old version stays open across the update.
		old, release, err := tab.AcquireFrom(info, nil)
		if err != nil {
			t.Fatal(err)
		}

		writeImage(t, path, 'B', 4096) // same size, other bytes
		if _, _, err := tab.Update(cfgs); err != nil {
			t.Fatal(err)
		}
		info2, _ := tab.Export("lab")
		if _, v2, _ := splitVersion(info2.Canonical); v2 == v1 || v2 == "" {
			t.Fatalf("version after the replacement %q, want a new one (was %s)", info2.Canonical, v1)
		}
		var p [1]byte
		old.Backend.ReadAt(p[:], 0)
		if p[0] != 'A' {
			t.Errorf("the old connection reads %q after the update", p[0])
		}
		release()
		for name, want := range map[string]byte{"lab": 'B', info2.Canonical: 'B', "lab@" + v1: 'A'} {
			if got, err := readFirst(t, tab, name); err != nil || got != want {
				t.Errorf("%s reads %q, %v; want %q", name, got, err, want)
			}
		}

		// Past the grace period without a connection: refused, loudly.
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		_, err = readFirst(t, tab, "lab@"+v1)
		if !errors.Is(err, protocol.ErrUnknownExport) || !strings.Contains(err.Error(), "replaced") {
			t.Errorf("old version after the grace: %v, want a refusal saying it was replaced", err)
		}

		// A restarted server serves the current version under its pinned
		// name and refuses the replaced one.
		tab2, err := OpenExports(cfgs)
		if err != nil {
			t.Fatal(err)
		}
		defer tab2.Close()
		if got, err := readFirst(t, tab2, info2.Canonical); err != nil || got != 'B' {
			t.Errorf("after a restart %s reads %q, %v; want B", info2.Canonical, got, err)
		}
		if _, err := readFirst(t, tab2, "lab@"+v1); !errors.Is(err, protocol.ErrUnknownExport) {
			t.Errorf("after a restart the replaced version: %v, want refused", err)
		}
	})
}

// TestImageVersionWritable: a writable export's version stays while its
// client writes (and across a reload and a restart).
func TestImageVersionWritable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seat.img")
	writeImage(t, path, 0, 8192)
	cfgs := []ExportConfig{{Name: "seat", Path: path}}
	tab, err := OpenExports(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	info, _ := tab.Export("seat")
	e, release, err := tab.AcquireFrom(info, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Backend.WriteAt([]byte("written"), 4096); err != nil {
		t.Fatal(err)
	}
	release()
	if _, retired, err := tab.Update(cfgs); err != nil || len(retired) != 0 {
		t.Fatalf("reload: retired %v, %v; want the export kept", retired, err)
	}
	tab2, err := OpenExports(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	defer tab2.Close()
	if i, _ := tab2.Export("seat"); i.Canonical != info.Canonical {
		t.Errorf("after writes and a restart the name is %q, want %q", i.Canonical, info.Canonical)
	}
}

// TestImageVersionHandshake: NBD_INFO_NAME carries the pinned name, and
// a client asking for it is served.
func TestImageVersionHandshake(t *testing.T) {
	tab, _ := fileExports(t, 1<<20, nil)
	ts := startServer(t, tab, testLimits())
	c := dial(t, ts.addr, "disk-ro", false)
	base, _, ok := splitVersion(c.neg.Name)
	if !ok || base != "disk-ro" {
		t.Fatalf("negotiated name %q, want disk-ro@VERSION", c.neg.Name)
	}
	c.disconnect()
	again := dial(t, ts.addr, c.neg.Name, false)
	if again.neg.Name != c.neg.Name || again.neg.Size != 1<<20 {
		t.Errorf("pinned name negotiated %q, %d bytes", again.neg.Name, again.neg.Size)
	}
}

// unversioned is name without a well-formed @VERSION.
func unversioned(name string) string {
	base, _, _ := splitVersion(name)
	return base
}

// FuzzSplitVersion: a name split into base and version joins back to it,
// and a base pinned to a version splits back into the two.
func FuzzSplitVersion(f *testing.F) {
	f.Add("lab@0123456789ab", "0123456789ab")
	f.Add("lab/52:54:00:12:34:56", "ffffffffffff")
	f.Add("@", "")
	f.Fuzz(func(t *testing.T, name, version string) {
		base, v, ok := splitVersion(name)
		if ok && base+"@"+v != name || !ok && (base != name || v != "") {
			t.Fatalf("splitVersion(%q) = %q, %q, %v", name, base, v, ok)
		}
		if len(version) != versionLen || !isHex(version) {
			return
		}
		if b2, v2, ok := splitVersion(name + "@" + version); !ok || b2 != name || v2 != version {
			t.Fatalf("splitVersion(%q@%q) = %q, %q, %v", name, version, b2, v2, ok)
		}
	})
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// TestImageVersionOverlays: a client's overlay over a replaced base
// stays over that base for its pinned reconnects; a new boot over the
// new base is refused while the old one is connected, then a persistent
// overlay is refused (never applied to the other base) and an ephemeral
// one made anew.
func TestImageVersionOverlays(t *testing.T) {
	for _, mode := range []string{COWPersistent, COWEphemeral} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "lab.img")
			writeImage(t, path, 'A', 8192)
			m, err := cow.NewManager(cow.Config{Dir: filepath.Join(dir, "state")})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			cfgs := []ExportConfig{{Name: "lab", Path: path, COW: mode}}
			tab, err := OpenExports(cfgs, WithOverlays(m))
			if err != nil {
				t.Fatal(err)
			}
			defer tab.Close()
			info, err := tab.Export("lab/pc1")
			if err != nil {
				t.Fatal(err)
			}
			pinned := info.Canonical
			if base, _, ok := splitVersion(pinned); !ok || base != "lab/pc1" {
				t.Fatalf("canonical %q, want lab/pc1@VERSION", pinned)
			}
			e, release, err := tab.AcquireFrom(info, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Backend.WriteAt([]byte("X"), 0); err != nil {
				t.Fatal(err)
			}

			writeImage(t, path, 'B', 8192)
			if _, _, err := tab.Update(cfgs); err != nil {
				t.Fatal(err)
			}
			// The running client's reconnect: its overlay, over its base.
			if got, err := readFirst(t, tab, pinned); err != nil || got != 'X' {
				t.Errorf("pinned reconnect reads %q, %v; want its own X", got, err)
			}
			// A new boot of the same client while it still runs: refused.
			if _, err := readFirst(t, tab, "lab/pc1"); !errors.Is(err, cow.ErrBusy) {
				t.Errorf("new boot while the old one is connected: %v, want ErrBusy", err)
			}
			release()
			got, err := readFirst(t, tab, "lab/pc1")
			switch mode {
			case COWPersistent:
				if !errors.Is(err, cow.ErrBaseChanged) {
					t.Errorf("persistent overlay over the new base: %q, %v; want ErrBaseChanged", got, err)
				}
			case COWEphemeral:
				if err != nil || got != 'B' {
					t.Errorf("ephemeral overlay after the update reads %q, %v; want a fresh one over B", got, err)
				}
			}
		})
	}
}
