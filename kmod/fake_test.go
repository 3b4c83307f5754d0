package kmod

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeModulesDep mirrors a Debian 6.1 tree, for the modules nbdboot needs.
const fakeModulesDep = `kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
kernel/drivers/block/nbd.ko:
kernel/test/cyc_a.ko:
kernel/test/cyc_b.ko:
kernel/test/needs_ghost.ko: kernel/test/ghost.ko
kernel/test/gzipped.ko.gz:
kernel/test/xzed.ko.xz:
kernel/test/withpost.ko:
kernel/test/lost.ko:
`

const fakeSoftdep = `# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crc32c
softdep cyc_a pre: cyc_b
softdep cyc_b pre: cyc_a
softdep nbd pre: no-such-module
softdep withpost pre: crc16 post: nbd
`

const fakeAlias = `# Aliases extracted from modules themselves.
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias fs-ext4 ext4
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias block-major-43-* nbd
`

const fakeBuiltin = `kernel/drivers/block/loop.ko
kernel/fs/overlayfs/overlay.ko
`

// Modalias strings of qemu's virtio-net-pci NIC and its virtio device.
const (
	virtioPCIAlias = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"
	virtioNetAlias = "virtio:d00000001v00001AF4"
	e1000Alias     = "pci:v00008086d0000100Esv00008086sd00001100bc02sc00i00"
)

// fakeTree writes a module tree: the index files and a .ko for every
// modules.dep entry except those in omit. Each module file holds
// "MODULE name".
func fakeTree(t *testing.T, omit ...string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, data string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("modules.dep", fakeModulesDep)
	write("modules.softdep", fakeSoftdep)
	write("modules.alias", fakeAlias)
	write("modules.builtin", fakeBuiltin)
	write("modules.builtin.alias", "alias fs-overlay overlay\n")
outer:
	for _, line := range strings.Split(fakeModulesDep, "\n") {
		p, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name := nameFromPath(p)
		for _, o := range omit {
			if o == name {
				continue outer
			}
		}
		data := "MODULE " + name
		if strings.HasSuffix(p, ".gz") {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write([]byte(data))
			zw.Close()
			data = b.String()
		}
		write(p, data)
	}
	return dir
}

// insertion is one call to the recorder.
type insertion struct {
	module string // from the file's "MODULE name" content
	params string
	flags  int
	inMem  bool // InitModule rather than FinitModule
}

// recorder is an Inserter that records calls and can fail or run hooks for
// chosen modules.
type recorder struct {
	mu    sync.Mutex
	calls []insertion
	fail  map[string]error  // module -> error to return
	after map[string]func() // module -> run after a successful insert
}

// FinitModule records the module named by a fake file's content, or by
// the file name for a real module.
func (r *recorder) FinitModule(f *os.File, params string, flags int) error {
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return err
	}
	name, fake := strings.CutPrefix(string(b), "MODULE ")
	if !fake {
		name = nameFromPath(f.Name())
	}
	return r.record(insertion{module: name, params: params, flags: flags})
}

func (r *recorder) InitModule(image []byte, params string) error {
	return r.record(insertion{module: strings.TrimPrefix(string(image), "MODULE "), params: params, inMem: true})
}

func (r *recorder) record(in insertion) error {
	r.mu.Lock()
	r.calls = append(r.calls, in)
	err := r.fail[in.module]
	hook := r.after[in.module]
	r.mu.Unlock()
	if err == nil && hook != nil {
		hook()
	}
	return err
}

func (r *recorder) modules() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var m []string
	for _, c := range r.calls {
		m = append(m, c.module)
	}
	return m
}

// newLoader builds a Loader over dir with a recorder and a clock that
// advances 1ms per reading. procModules lists already loaded modules.
func newLoader(t *testing.T, dir string, procModules ...string) (*Loader, *recorder) {
	t.Helper()
	proc := filepath.Join(t.TempDir(), "modules")
	var b strings.Builder
	for _, m := range procModules {
		fmt.Fprintf(&b, "%s 16384 0 - Live 0x0000000000000000\n", m)
	}
	if err := os.WriteFile(proc, []byte(b.String()), 0o444); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{fail: map[string]error{}, after: map[string]func(){}}
	var mu sync.Mutex
	now := time.Unix(0, 0)
	l, err := New(Options{Dir: dir, ProcModules: proc, Inserter: rec, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}})
	if err != nil {
		t.Fatal(err)
	}
	return l, rec
}
