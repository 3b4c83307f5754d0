package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/protocol"
)

// trace records the calls of all fakes in order.
type trace struct {
	mu     sync.Mutex
	events []string
}

func (t *trace) add(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, fmt.Sprintf(format, args...))
}

func (t *trace) list() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.events...)
}

// fakeClock moves only when someone waits: After advances it at once.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now
	return ch
}

func (c *fakeClock) advance(d time.Duration) { c.After(d) }

type fakeFS struct {
	tr       *trace
	files    map[string][]byte // written files
	devices  map[string][]byte // device contents for Open
	mountErr map[string]error  // by target
	// mountHook, when set, decides every mount's result instead.
	mountHook func(source, target, fstype string, flags uintptr, data string) error
}

func (f *fakeFS) MkdirAll(path string, perm os.FileMode) error {
	f.tr.add("mkdir %s %#o", path, perm)
	return nil
}

func (f *fakeFS) Mount(source, target, fstype string, flags uintptr, data string) error {
	f.tr.add("mount %s %s %s %#x %q", source, target, fstype, flags, data)
	if f.mountHook != nil {
		return f.mountHook(source, target, fstype, flags, data)
	}
	return f.mountErr[target]
}

func (f *fakeFS) WriteFile(path string, data []byte, perm os.FileMode) error {
	f.tr.add("write %s", path)
	if f.files == nil {
		f.files = map[string][]byte{}
	}
	f.files[path] = append([]byte(nil), data...)
	return nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func (f *fakeFS) Open(path string) (ReaderAtCloser, error) {
	f.tr.add("open %s", path)
	b, ok := f.devices[path]
	if !ok {
		return nil, os.ErrNotExist
	}
	return nopCloser{bytes.NewReader(b)}, nil
}

type fakeModules struct {
	tr   *trace
	fail map[string]error
}

func (m *fakeModules) Load(name string) error {
	m.tr.add("modprobe %s", name)
	return m.fail[name]
}

func (m *fakeModules) LoadForDevices() ([]string, error) {
	m.tr.add("modalias")
	return []string{"virtio_net"}, nil
}

type fakeNetwork struct {
	tr    *trace
	clock *fakeClock
	info  NetInfo
	err   error
	cost  time.Duration // fake time one attempt takes
}

func (n *fakeNetwork) Up(ctx context.Context, ip []string) (NetInfo, error) {
	n.tr.add("network up %q", ip)
	n.clock.advance(n.cost)
	if n.err != nil {
		return NetInfo{}, n.err
	}
	return n.info, nil
}

// fakeServer answers dials once the fake clock reaches upAt.
type fakeServer struct {
	tr     *trace
	clock  *fakeClock
	upAt   map[string]time.Time // by address; absent means never
	export protocol.ExportInfo
	dials  int
	mu     sync.Mutex
	conns  []net.Conn
}

func (s *fakeServer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dials++
	up, ok := s.upAt[addr]
	if !ok || s.clock.Now().Before(up) {
		s.tr.add("dial %s refused", addr)
		return nil, fmt.Errorf("dial tcp %s: connect: connection refused", addr)
	}
	s.tr.add("dial %s", addr)
	c, peer := net.Pipe()
	s.conns = append(s.conns, peer)
	return c, nil
}

func (s *fakeServer) negotiate(ctx context.Context, conn net.Conn, req NegotiateRequest) (protocol.ExportInfo, error) {
	s.tr.add("negotiate %q", req.Name())
	e := s.export
	e.Name = req.Name()
	return e, nil
}

type fakeDevice struct {
	tr  *trace
	req AttachRequest
	err error
}

func (d *fakeDevice) Attach(ctx context.Context, req AttachRequest) (Attached, error) {
	d.req = req
	idx := "auto"
	if req.Index != nil {
		idx = fmt.Sprint(*req.Index)
	}
	d.tr.add("attach index=%s conns=%d size=%d bs=%d flags=%#x backend=%s", idx, len(req.Conns), req.Size, req.BlockSize, req.ServerFlags, req.BackendID)
	if d.err != nil {
		return Attached{}, d.err
	}
	att := Attached{Ioctl: req.Ioctl}
	if req.Ioctl {
		att.Why = "nbdboot.attach=ioctl"
	}
	if req.Index != nil {
		att.Index = *req.Index
	}
	return att, nil
}

func (d *fakeDevice) RescanPartitions(dev string) error {
	d.tr.add("rescan %s", dev)
	return nil
}

func (d *fakeDevice) WaitPath(ctx context.Context, path string) error {
	d.tr.add("wait %s", path)
	return nil
}

var errExeced = errors.New("fake: init executed")

type fakeSwitcher struct {
	tr   *trace
	spec SwitchSpec
}

func (s *fakeSwitcher) Switch(spec SwitchSpec) error {
	s.spec = spec
	s.tr.add("switch_root %s init=%q args=%q", spec.NewRoot, spec.Init, spec.Args)
	if spec.AfterChroot != nil {
		if err := spec.AfterChroot(); err != nil {
			return err
		}
	}
	s.tr.add("exec init")
	return errExeced
}

type fakeSupervisor struct{ tr *trace }

func (s *fakeSupervisor) Start(statePath string) error {
	s.tr.add("supervisor %s", statePath)
	return nil
}

// fakeShell records its runs; after `stopAfter` runs it cancels the
// context given to it by the test.
type fakeShell struct {
	tr      *trace
	err     error
	reasons []string
	stop    context.CancelFunc
}

func (s *fakeShell) Run(ctx context.Context, reason string) error {
	s.tr.add("shell")
	s.reasons = append(s.reasons, reason)
	if s.stop != nil {
		s.stop()
	}
	return s.err
}

// world is a full set of fakes around one boot.
type world struct {
	tr       *trace
	clock    *fakeClock
	fs       *fakeFS
	mods     *fakeModules
	net      *fakeNetwork
	server   *fakeServer
	dev      *fakeDevice
	sw       *fakeSwitcher
	shell    *fakeShell
	log      *bytes.Buffer
	cfg      *bootcfg.Config
	parseErr error
	env      *Env
}

// ext4Image is a device whose superblock says ext4.
func ext4Image() []byte {
	b := make([]byte, 4096)
	b[1080], b[1081] = 0x53, 0xEF
	return b
}

func newWorld() *world {
	tr := &trace{}
	clock := newFakeClock()
	w := &world{
		tr: tr, clock: clock,
		fs:   &fakeFS{tr: tr, devices: map[string][]byte{"/dev/nbd0": ext4Image(), "/dev/nbd0p2": ext4Image()}},
		mods: &fakeModules{tr: tr},
		net: &fakeNetwork{tr: tr, clock: clock, cost: 300 * time.Millisecond, info: NetInfo{
			Interface: "eth0", Index: 2, Addrs: []string{"10.0.2.15/24"}, Method: "dhcp", RootPath: "nbd:10.0.2.2:10809/root:squashfs"}},
		server: &fakeServer{tr: tr, clock: clock,
			upAt:   map[string]time.Time{"10.0.2.2:10809": clock.Now()},
			export: protocol.ExportInfo{Size: 1 << 30, Flags: 1 | 1<<2 | 1<<8, MinBlock: 1, PrefBlock: 4096, MaxBlock: 32 << 20}},
		dev:   &fakeDevice{tr: tr},
		sw:    &fakeSwitcher{tr: tr},
		shell: &fakeShell{tr: tr},
		log:   &bytes.Buffer{},
		cfg:   mustParse("nbdroot=nbd://10.0.2.2/root nbdboot.timeout=30 nbdboot.deadconn=120 nbdboot.retry=30 -- single"),
	}
	w.env = &Env{
		ReadCmdline: func() (string, error) { tr.add("cmdline"); return "console=ttyS0 nbdroot=10.0.2.2,10809,root\n", nil },
		Parse: func(string) (*bootcfg.Config, error) {
			if w.parseErr != nil {
				return nil, w.parseErr
			}
			return w.cfg, nil
		},
		FS: w.fs, Modules: w.mods, Network: w.net, Dialer: w.server, Negotiate: w.server.negotiate,
		Device: w.dev, Switch: w.sw, Supervisor: &fakeSupervisor{tr: tr}, Shell: w.shell, Clock: clock,
		Log: NewLogger(w.log, clock),
	}
	return w
}

// mustParse parses a command line for the tests' Config.
func mustParse(line string) *bootcfg.Config {
	c, err := ParseCommandLine(line)
	if err != nil {
		panic(err)
	}
	return c
}
