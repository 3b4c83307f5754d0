package boot

import (
	"testing"

	"github.com/nbdboot/nbdboot/bootcfg"
)

func TestPinVersion(t *testing.T) {
	for _, tt := range []struct{ asked, canonical, want string }{
		{"lab", "lab@0123456789ab", "lab@0123456789ab"},                                                       // nbdserve pins
		{"lab/52:54:00:12:34:56", "lab/52:54:00:12:34:56@0123456789ab", "lab/52:54:00:12:34:56@0123456789ab"}, // overlay
		{"lab", "lab", "lab"},                                        // a server echoing the name
		{"lab", "", "lab"},                                           // no NBD_INFO_NAME
		{"lab", "other", "lab"},                                      // another name: not a pin
		{"lab", "lab/x@0123456789ab", "lab"},                         // not an extension by a version alone
		{"lab", "lab@a@0123456789ab", "lab"},                         // nor this
		{"lab@0123456789ab", "lab@0123456789ab", "lab@0123456789ab"}, // already pinned
	} {
		got := pinVersion(bootcfg.Address{Server: bootcfg.Server{Host: "10.0.0.1", Port: 10809}, Export: tt.asked}, tt.canonical)
		if got.Export != tt.want || got.Host != "10.0.0.1" {
			t.Errorf("pinVersion(%q, %q) = %+v, want export %q", tt.asked, tt.canonical, got, tt.want)
		}
	}
}
