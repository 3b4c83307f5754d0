package tomlx

import (
	"testing"
	"time"
)

// TestDuration: text parses to the duration and formats back; bad text
// is an error.
func TestDuration(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("90s")); err != nil || time.Duration(d) != 90*time.Second {
		t.Fatalf("90s: %v, %v", time.Duration(d), err)
	}
	if b, _ := d.MarshalText(); string(b) != "1m30s" {
		t.Fatalf("formatted %q, want 1m30s", b)
	}
	if err := d.UnmarshalText([]byte("ten minutes")); err == nil {
		t.Fatal("bad text accepted")
	}
}
