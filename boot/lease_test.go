package boot

import (
	"context"
	"io"
	"strings"
	"testing"
)

func TestKeepLeaseWithoutDHCP(t *testing.T) {
	log := NewLogger(io.Discard, newFakeClock())
	if err := KeepLease(context.Background(), State{Interface: "eth0"}, log); err != nil {
		t.Errorf("static boot: KeepLease = %v, want nil at once", err)
	}
	err := KeepLease(context.Background(), State{Interface: "eth0", DHCPAddr: "10.0.2.15"}, log)
	if err == nil || !strings.Contains(err.Error(), `eth0: address "10.0.2.15"`) {
		t.Errorf("KeepLease with a bad address = %v", err)
	}
}
