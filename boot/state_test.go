package boot

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
)

func TestStateRoundTrip(t *testing.T) {
	st := State{
		Version: StateVersion, Index: 0, Device: "/dev/nbd0",
		Servers: []bootcfg.Address{{Server: bootcfg.Server{Host: "10.0.2.2", Port: 10809}, Export: "root"}, {Server: bootcfg.Server{Host: "10.0.2.3", Port: 10809}, Export: "root"}},
		Target:  bootcfg.Address{Server: bootcfg.Server{Host: "10.0.2.2", Port: 10809}, Export: "root"}, BackendID: "nbd://10.0.2.2:10809/root",
		ClientID: "52:54:00:12:34:56", Connections: 2, Size: 1 << 30, BlockSize: 4096, ServerFlags: 0x10d,
		Timeout: 30 * time.Second, DeadConn: 2 * time.Minute, Interface: "eth0", Overlay: "tmpfs", DHCPAddr: "10.0.2.15/24",
	}
	b, err := MarshalState(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalState(b)
	if err != nil || !reflect.DeepEqual(got, st) {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	for _, bad := range []struct{ in, want string }{
		{`{"version": 2, "device": "/dev/nbd0", "target": {"host": "h"}}`, "version 2"},
		{`{"version": 1}`, "no device"},
		{`{`, "decode state"},
		{strings.Repeat(" ", maxStateSize+1), "more than"},
	} {
		if _, err := UnmarshalState([]byte(bad.in)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("UnmarshalState(%.20q) = %v, want %q", bad.in, err, bad.want)
		}
	}
}
