package pxe

import "testing"

// TestSlots: a key holds at most per places; the reserve is left to
// privileged keys; a released place is taken again; the table forgets a
// key holding none.
func TestSlots(t *testing.T) {
	s := newSlots(2, 5, 1)
	for i, tt := range []struct {
		key        string
		privileged bool
		want       bool
	}{
		{"a", false, true},
		{"a", false, true},
		{"a", false, false}, // a holds per
		{"b", false, true},
		{"c", false, true},  // 4 of 5 taken: the last is the reserve
		{"d", false, false}, // not privileged
		{"d", true, true},   // privileged: the reserve
		{"e", true, false},  // all taken
	} {
		if got := s.take(tt.key, tt.privileged); got != tt.want {
			t.Fatalf("step %d: take(%s, %v) = %v", i, tt.key, tt.privileged, got)
		}
	}
	s.release("b")
	if _, ok := s.by["b"]; ok {
		t.Fatal("a key holding nothing is still in the table")
	}
	if !s.take("e", true) {
		t.Fatal("a released place was not taken again")
	}
}
