package server

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/protocol"
)

func TestExports(t *testing.T) {
	tab, _, _ := memExports(t, 4096)
	list := tab.Exports()
	if len(list) != 2 || list[0].Name != "mem" || list[0].Description != "in memory" || list[1].Name != "ro" || list[0].Size != 4096 {
		t.Fatalf("Exports() = %+v", list)
	}
	rwFlags := protocol.FlagHasFlags | protocol.FlagSendFlush | protocol.FlagSendDF | protocol.FlagSendCache |
		protocol.FlagCanMultiConn | protocol.FlagSendFUA | protocol.FlagSendTrim | protocol.FlagSendWriteZeroes | protocol.FlagSendFastZero
	roFlags := protocol.FlagHasFlags | protocol.FlagSendFlush | protocol.FlagSendDF | protocol.FlagSendCache |
		protocol.FlagCanMultiConn | protocol.FlagReadOnly
	if list[0].Flags != rwFlags || list[1].Flags != roFlags {
		t.Errorf("flags rw %#x ro %#x, want %#x %#x", list[0].Flags, list[1].Flags, rwFlags, roFlags)
	}
	if info, err := tab.Export("ro"); err != nil || info.Name != "ro" || info.MaxBlock != protocol.MaxPayload {
		t.Errorf("Export(ro) = %+v, %v", info, err)
	}
	// The empty name is ambiguous with two exports...
	if _, err := tab.Export(""); !errors.Is(err, protocol.ErrUnknownExport) {
		t.Errorf("Export(\"\") with two exports: %v, want ErrUnknownExport", err)
	}
	if _, err := tab.Resolve("nope"); !errors.Is(err, protocol.ErrUnknownExport) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Resolve(nope): %v", err)
	}
	// ...and means the only one when there is one.
	one, err := NewExports(&Export{Name: "only", Backend: newMemBackend(512)})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := one.Resolve(""); err != nil || e.Name != "only" {
		t.Errorf("Resolve(\"\") with one export: %v, %v", e, err)
	}
	if _, err := NewExports(&Export{Name: "a", Backend: newMemBackend(1)}, &Export{Name: "a", Backend: newMemBackend(1)}); err == nil ||
		err.Error() != `export "a": defined twice` {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := NewExports(&Export{Name: "a/b", Backend: newMemBackend(1)}); err == nil {
		t.Error("name with '/' accepted")
	}
}

func TestExportsUpdate(t *testing.T) {
	dir := t.TempDir()
	a, b, c := dir+"/a.img", dir+"/b.img", dir+"/c.img"
	for _, p := range []string{a, b, c} {
		if err := os.WriteFile(p, pattern(0, 8192), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// No grace for replaced versions: closed with their last connection
	// (version_test.go covers the grace).
	tab, err := OpenExports([]ExportConfig{{Name: "a", Path: a}, {Name: "b", Path: b, ReadOnly: true}}, WithVersionGrace(0))
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	ea, _ := tab.Resolve("a")
	eb, releaseB, err := tab.Acquire("b") // a connection serving b
	if err != nil {
		t.Fatal(err)
	}

	// A bad config changes nothing.
	if _, _, err := tab.Update([]ExportConfig{{Name: "a", Path: a}, {Name: "x", Path: dir + "/missing"}}); err == nil {
		t.Fatal("Update with a missing path succeeded")
	}
	if names := exportNames(tab); names != "a,b" {
		t.Fatalf("after failed Update: %s", names)
	}

	// a keeps its backend and gets a description, b goes, c comes.
	opened, retired, err := tab.Update([]ExportConfig{{Name: "c", Path: c}, {Name: "a", Path: a, Description: "now described"}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(opened, retired) != "[c] [b]" {
		t.Errorf("Update opened %v retired %v", opened, retired)
	}
	if names := exportNames(tab); names != "c,a" {
		t.Errorf("after Update: %s", names)
	}
	// a is published anew (exports are immutable), on the same backend.
	if e, _ := tab.Resolve("a"); e.Backend != ea.Backend || e.Image != ea.Image || e.Info().Description != "now described" || ea.Description != "" {
		t.Errorf("export a reopened, not updated, or changed in place: %+v", e.Info())
	}
	if _, err := tab.Export("b"); !errors.Is(err, protocol.ErrUnknownExport) {
		t.Errorf("b still offered: %v", err)
	}
	// b's connection still reads until it releases; then b is closed.
	if _, err := eb.Backend.ReadAt(make([]byte, 512), 0); err != nil {
		t.Errorf("retired export closed under its connection: %v", err)
	}
	releaseB()
	releaseB() // idempotent
	if _, err := eb.Backend.ReadAt(make([]byte, 512), 0); err == nil {
		t.Error("retired export still open after its last connection")
	}
	// Changing the path or read-only setting reopens.
	if _, _, err := tab.Update([]ExportConfig{{Name: "a", Path: a, ReadOnly: true}}); err != nil {
		t.Fatal(err)
	}
	if e, _ := tab.Resolve("a"); e == ea || !e.ReadOnly {
		t.Error("export a not reopened read-only")
	}
	if _, err := ea.Backend.ReadAt(make([]byte, 512), 0); err == nil {
		t.Error("replaced export a still open")
	}
}

func exportNames(t *Exports) string {
	var names []string
	for _, e := range t.Exports() {
		names = append(names, e.Name)
	}
	return strings.Join(names, ",")
}
