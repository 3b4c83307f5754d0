package server

import (
	"os"
	"testing"
)

// TestResolvedOnce: the export the handshake resolved (ExportInfo.Ref) is
// the one served, with no second lookup; one an Update replaced meanwhile
// is not (its backend may be closed): then the name is resolved again.
func TestResolvedOnce(t *testing.T) {
	dir := t.TempDir()
	a, b := dir+"/a.img", dir+"/b.img"
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, pattern(0, 8192), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tab, err := OpenExports([]ExportConfig{{Name: "x", Path: a}, {Name: "y", Path: a}})
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	info, err := tab.Export("x")
	if err != nil {
		t.Fatal(err)
	}
	held, err := tab.Export("y")
	if err != nil {
		t.Fatal(err)
	}
	e, release, err := tab.AcquireFrom(info, nil)
	if err != nil || e != info.Ref.(*resolved).e {
		t.Fatalf("AcquireFrom = %v, %v; want the export the handshake resolved", e, err)
	}
	release()

	// x now names another file: the handshake's x was replaced.
	if _, _, err := tab.Update([]ExportConfig{{Name: "x", Path: b}, {Name: "y", Path: a}}); err != nil {
		t.Fatal(err)
	}
	e, release, err = tab.AcquireFrom(info, nil)
	if err != nil || e == info.Ref.(*resolved).e || e.path != b {
		t.Fatalf("after x was replaced: AcquireFrom = %+v, %v; want the new x", e, err)
	}
	release()
	// y was kept: still the export resolved, no second lookup needed.
	e, release, err = tab.AcquireFrom(held, nil)
	if err != nil || e != held.Ref.(*resolved).e {
		t.Fatalf("kept y: AcquireFrom = %v, %v", e, err)
	}
	release()
}
