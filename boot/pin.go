package boot

import (
	"strings"

	"github.com/nbdboot/nbdboot/bootcfg"
)

// Image versions: nbdserve names the export it served NAME@VERSION in
// NBD_INFO_NAME (the canonical name), VERSION identifying the image
// file. The supervisor reconnects with that name, so that a server whose
// image was replaced meanwhile (a reload or a restart) serves the version
// this machine booted, or refuses with a message, and never different
// bytes under the mounted root. Other servers echo the name asked for,
// which changes nothing.

// pinVersion returns t asking for the canonical name the server gave
// when it extends the name asked for with "@"; else t unchanged.
func pinVersion(t bootcfg.Address, canonical string) bootcfg.Address {
	if strings.HasPrefix(canonical, t.Export+"@") && !strings.ContainsAny(canonical[len(t.Export)+1:], "/@") {
		t.Export = canonical
	}
	return t
}
