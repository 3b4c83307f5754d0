package cow

import (
	"bytes"
	"github.com/nbdboot/nbdboot/protocol"
	"testing"
)

// sparseBase is a base that says whether it may be sparse.
type sparseBase struct {
	*bytes.Reader
	sparse bool
}

func (b sparseBase) Extents(off, length int64, max int) ([]protocol.Extent, error) {
	return []protocol.Extent{{Length: uint32(length)}}, nil
}
func (b sparseBase) MaybeSparse() bool { return b.sparse }

// TestMaybeSparse: reads are split into data and holes only when the
// overlay can hold holes: a sparse base, or a block trimmed or zeroed,
// also after reopening.
func TestMaybeSparse(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 64<<10)
	dense := sparseBase{bytes.NewReader(data), false}
	o, err := Open(dir, dense, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if o.MaybeSparse() {
		t.Error("fresh overlay over a dense base: MaybeSparse")
	}
	if _, err := o.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if o.MaybeSparse() {
		t.Error("after a write: MaybeSparse")
	}
	if err := o.Trim(8192, 8192); err != nil {
		t.Fatal(err)
	}
	if !o.MaybeSparse() {
		t.Error("after a TRIM of whole blocks: not MaybeSparse")
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if o, err = Open(dir, dense, Options{}); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if !o.MaybeSparse() {
		t.Error("reopened with a Zero block: not MaybeSparse")
	}
	sp, err := Open(t.TempDir(), sparseBase{bytes.NewReader(data), true}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if !sp.MaybeSparse() {
		t.Error("over a sparse base: not MaybeSparse")
	}
}

func TestStateMapHasZero(t *testing.T) {
	m := newStateMap(40)
	m.setRun(0, 40, StateData)
	if m.hasZero() {
		t.Error("all Data: hasZero")
	}
	m.setRun(37, 1, StateZero)
	if !m.hasZero() {
		t.Error("block 37 Zero: not hasZero")
	}
	m.setRun(37, 1, StateBase)
	if m.hasZero() {
		t.Error("Zero block reset to Base: hasZero")
	}
}
