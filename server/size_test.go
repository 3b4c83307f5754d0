package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Size
		ok   bool
	}{
		{"0", 0, true},
		{"4096", 4096, true},
		{"4K", 4 << 10, true},
		{"4k", 4 << 10, true},
		{"512M", 512 << 20, true},
		{"2G", 2 << 30, true},
		{"1T", 1 << 40, true},
		{"", 0, false},
		{"G", 0, false},
		{"-1", 0, false},
		{"1.5G", 0, false},
		{"2X", 0, false},
		{"9999999999T", 0, false}, // overflows
	} {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestConfigQuotaGrace: quota as an integer or a string with a suffix,
// grace as a duration string, in the TOML file.
func TestConfigQuotaGrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(path, []byte(`
[[export]]
name = "a"
path = "/x"
cow = "ephemeral"
quota = 8192
[[export]]
name = "b"
path = "/y"
cow = "persistent"
quota = "1M"
grace = "90s"
`), 0o644)
	cfg, err := LoadConfig(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := cfg.Exports[0], cfg.Exports[1]; a.Quota != 8192 || b.Quota != 1<<20 || b.Grace != Duration(90*time.Second) {
		t.Errorf("exports: %+v", cfg.Exports)
	}
	os.WriteFile(path, []byte("[[export]]\nname = \"a\"\npath = \"/x\"\nquota = 8192\n"), 0o644)
	if _, err := LoadConfig(path, nil); err == nil {
		t.Error("quota on a plain export: no error")
	}
}
