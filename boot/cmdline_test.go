package boot

import (
	"strings"
	"testing"
)

func TestParseCommandLineMalformed(t *testing.T) {
	cfg, err := ParseCommandLine("nbdroot=10.0.2.2,root nbdboot.connections=zero nbdboot.shell=0")
	if err == nil || !strings.Contains(err.Error(), "nbdboot.connections") {
		t.Fatalf("Parse error = %v, want one naming nbdboot.connections", err)
	}
	if cfg == nil || cfg.Shell {
		t.Errorf("partial cfg = %+v, want the shell setting kept", cfg)
	}
	if _, err := ParseCommandLine("quiet"); err == nil || !strings.Contains(err.Error(), "nbdroot=") {
		t.Errorf("no root: %v", err)
	}
}
