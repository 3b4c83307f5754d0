package netcfg

import (
	"context"
	"math/rand/v2"
	"sync"

	urand "github.com/u-root/uio/rand"
	"golang.org/x/sys/unix"
)

// The DHCP library takes its transaction IDs from u-root's rand.Reader,
// which polls getrandom(GRND_NONBLOCK) until the kernel's random number
// generator is initialised: in a quiet virtual machine without a hardware
// generator, at boot, that can take minutes. A transaction ID only has to
// differ between clients and exchanges, not to be secret, so the DHCP
// client draws it from xidReader, which never waits.
var useXIDReader = sync.OnceFunc(func() { urand.Reader = xidReader{} })

// xidReader fills buffers from getrandom(GRND_INSECURE) (Linux 5.6+: the
// kernel's generator, initialised or not), or where the kernel lacks it
// from the runtime's ChaCha8 generator, which the kernel seeds at exec
// (AT_RANDOM). It never blocks and never fails.
type xidReader struct{}

func (r xidReader) Read(b []byte) (int, error) {
	return r.ReadContext(context.Background(), b)
}

func (xidReader) ReadContext(_ context.Context, b []byte) (int, error) {
	n, err := unix.Getrandom(b, unix.GRND_INSECURE)
	if err != nil || n < 0 {
		n = 0
	}
	for i := n; i < len(b); i++ {
		b[i] = byte(rand.Uint32())
	}
	return len(b), nil
}
