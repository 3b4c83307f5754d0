package server

import (
	"errors"
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
