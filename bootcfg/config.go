package bootcfg

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nbdboot/nbdboot/nbdnl"
)

// Defaults for what the command line leaves out.
const (
	DefaultInit        = "/sbin/init"
	DefaultConnections = 1
	// DefaultRequestTimeout is short because on Linux 6.1 requests in flight
	// when a connection dies are not resent on the replacement socket: they
	// wait for their own timeout. 10 s bounds that stall after a server
	// restart; a request that is merely slow is requeued, which the
	// server's fence makes safe.
	DefaultRequestTimeout  = 10 * time.Second
	DefaultDeadConnTimeout = time.Hour   // queue I/O this long while reconnecting, like iSCSI's replacement_timeout but generous
	DefaultRetry           = time.Minute // keep trying network and server this long before the rescue shell
)

// Overlay is the client-side overlay mode (nbdboot.overlay=).
type Overlay string

// Overlay modes.
const (
	OverlayNone  Overlay = ""      // mount the root as it is
	OverlayTmpfs Overlay = "tmpfs" // the root read-only, under an overlayfs with a tmpfs upper layer
)

// AttachMethod is how the root device is handed to the kernel
// (nbdboot.attach=).
type AttachMethod string

// Attach methods.
const (
	AttachNetlink AttachMethod = ""      // netlink, ioctls only where the kernel has no nbd netlink family
	AttachIoctl   AttachMethod = "ioctl" // ioctls even where netlink works (for testing the fallback)
)

// BreakPoint is where rd.break / nbdboot.break drops to a shell.
type BreakPoint string

// Break points, in boot order. The names are dracut's.
const (
	BreakPreMount BreakPoint = "pre-mount" // network up, before the NBD device is attached
	BreakMount    BreakPoint = "mount"     // device attached, before the root is mounted
	BreakPrePivot BreakPoint = "pre-pivot" // root mounted, before switch_root (bare rd.break)
)

// Config is what the kernel command line asks of the init.
type Config struct {
	// NBD is the root export from nbdroot=, root=nbd:… or netroot=nbd:…;
	// repeated values naming the same export merge into one server list.
	// Nil when none was given (see FromDHCP).
	NBD *Target
	// FromDHCP: nbdroot=dhcp, root=dhcp or netroot=dhcp; the init takes the
	// target from the DHCP root-path (option 17) with ParseNBDRoot.
	FromDHCP bool
	// RootDevice is root=/dev/nbdN or /dev/nbdNpM; nil when not given.
	RootDevice *nbdnl.Device
	// IP holds every ip= value, unparsed (netcfg parses them).
	IP []string

	RootFSType string // rootfstype=; overrides the target's FSTYPE
	RootFlags  string // rootflags=; overrides the target's ROOTFLAGS
	ReadOnly   bool   // ro (the default) or rw
	Init       string // init=, DefaultInit if not given
	InitArgs   []string

	Connections     int           // nbdboot.connections=, 1…16
	RequestTimeout  time.Duration // nbdboot.timeout=; 0 never times a request out
	DeadConnTimeout time.Duration // nbdboot.deadconn=; how long the kernel queues I/O with no live connection
	Retry           time.Duration // nbdboot.retry=; total time to retry network and server at boot
	Debug           bool          // nbdboot.debug or rd.debug
	Overlay         Overlay       // nbdboot.overlay=
	Attach          AttachMethod  // nbdboot.attach=netlink|ioctl
	ClientID        string        // nbdboot.clientid=; "" means the MAC address of the boot interface, "none" the plain export name (boot.ClientIDNone)
	Modules         []string      // nbdboot.modules=a,b (repeatable): extra modules to load
	Shell           bool          // nbdboot.shell / rd.shell: rescue shell on failure (default on)
	Breaks          []BreakPoint  // rd.break / nbdboot.break

	// Params is the whole command line before "--", in order.
	Params []Param

	connectionsSet, timeoutSet bool
}

// Parse parses a kernel command line. It returns every malformed parameter
// in one joined error, each naming the parameter and what was expected,
// together with a Config holding everything that parsed (and defaults).
// Parameters it does not know (console=, quiet, rootwait…) are ignored,
// except nbdboot.* where an unknown key is an error.
func Parse(cmdline string) (*Config, error) {
	c := &Config{
		ReadOnly:        true,
		Init:            DefaultInit,
		Connections:     DefaultConnections,
		RequestTimeout:  DefaultRequestTimeout,
		DeadConnTimeout: DefaultDeadConnTimeout,
		Retry:           DefaultRetry,
		Shell:           true,
	}
	c.Params, c.InitArgs = Tokenize(cmdline)
	var errs []error
	for _, p := range c.Params {
		if err := c.apply(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
		}
	}
	if c.NBD != nil && c.FromDHCP {
		errs = append(errs, errors.New("nbdroot=dhcp (or root=dhcp) conflicts with the server given in nbdroot=/root="))
	}
	if c.NBD != nil {
		if _, err := c.device(*c.NBD); err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...)
}

// apply parses one parameter into c.
func (c *Config) apply(p Param) error {
	if rest, ok := strings.CutPrefix(p.Key, "nbdboot."); ok {
		return c.applyOwn(rest, p)
	}
	switch p.Key {
	case "nbdroot":
		return c.applyRoot(p, false)
	case "root":
		return c.applyRoot(p, true)
	case "netroot":
		if err := needValue(p); err != nil {
			return err
		}
		if !isNBDValue(p.Value) && !strings.EqualFold(p.Value, "dhcp") {
			return fmt.Errorf("only NBD network roots are supported; expected %s, %s or dhcp", dracutForm, uriForm)
		}
		return c.applyRoot(p, false)
	case "ip":
		if err := needValue(p); err != nil {
			return err
		}
		c.IP = append(c.IP, p.Value)
	case "rootfstype":
		if err := needValue(p); err != nil {
			return err
		}
		if err := checkFSType(p.Value); err != nil {
			return err
		}
		c.RootFSType = p.Value
	case "rootflags":
		if err := needValue(p); err != nil {
			return err
		}
		c.RootFlags = p.Value
	case "ro", "rw":
		if !p.HasValue { // like the kernel, "ro=x" is not the ro flag
			c.ReadOnly = p.Key == "ro"
		}
	case "init":
		if !strings.HasPrefix(p.Value, "/") {
			return errors.New("expected an absolute path, like /sbin/init")
		}
		c.Init = p.Value
	case "rd.shell":
		return setBool(&c.Shell, p)
	case "rd.debug":
		return setBool(&c.Debug, p)
	case "rd.break":
		return c.addBreak(p)
	}
	return nil
}

// applyOwn parses nbdboot.KEY.
func (c *Config) applyOwn(key string, p Param) error {
	var err error
	switch key {
	case "connections":
		var n int
		if n, err = parseCount(p.Value, p.HasValue, 1, MaxConnections); err == nil {
			c.Connections, c.connectionsSet = n, true
		}
	case "timeout":
		err = setSeconds(&c.RequestTimeout, p)
		c.timeoutSet = c.timeoutSet || err == nil
	case "deadconn":
		err = setSeconds(&c.DeadConnTimeout, p)
	case "retry":
		err = setSeconds(&c.Retry, p)
	case "debug":
		err = setBool(&c.Debug, p)
	case "shell":
		err = setBool(&c.Shell, p)
	case "break":
		err = c.addBreak(p)
	case "overlay":
		switch p.Value {
		case "tmpfs", "": // bare nbdboot.overlay means tmpfs
			c.Overlay = OverlayTmpfs
		case "none", "off":
			c.Overlay = OverlayNone
		default:
			err = errors.New("expected tmpfs or none")
		}
	case "attach":
		switch p.Value {
		case "netlink":
			c.Attach = AttachNetlink
		case "ioctl":
			c.Attach = AttachIoctl
		default:
			err = errors.New("expected netlink or ioctl")
		}
	case "clientid":
		err = checkClientID(p.Value)
		if err == nil {
			c.ClientID = p.Value
		}
	case "modules":
		var mods []string
		mods, err = parseModuleList(p.Value)
		c.Modules = append(c.Modules, mods...)
	default:
		return fmt.Errorf("unknown nbdboot option %q; known: nbdboot.connections, .timeout, .deadconn, .retry, .debug, .shell, .break, .overlay, .attach, .clientid, .modules", p.Key)
	}
	return err
}

// applyRoot handles nbdroot=, root= (isRoot) and netroot=.
func (c *Config) applyRoot(p Param, isRoot bool) error {
	if err := needValue(p); err != nil {
		return err
	}
	v := strings.TrimSpace(p.Value)
	switch {
	case strings.EqualFold(v, "dhcp"):
		c.FromDHCP = true
		return nil
	case isRoot && strings.HasPrefix(v, "/dev/nbd"):
		d, err := nbdnl.ParseDevice(v)
		if err != nil {
			return errors.New("expected /dev/nbdN or /dev/nbdNpM, like /dev/nbd0 or /dev/nbd0p1")
		}
		c.RootDevice = &d
		return nil
	case isRoot && !isNBDValue(v):
		return fmt.Errorf("nbdboot mounts only NBD roots; expected /dev/nbdN[pM], %s, %s or dhcp", dracutForm, uriForm)
	}
	t, err := ParseNBDRoot(v)
	if err != nil {
		return err
	}
	if c.NBD == nil {
		c.NBD = &t
		return nil
	}
	return c.NBD.merge(t)
}

// merge adds the servers of another value for the same export.
func (t *Target) merge(o Target) error {
	if o.Export != t.Export {
		return fmt.Errorf("names export %q but an earlier NBD root names %q; several servers must serve the same export", o.Export, t.Export)
	}
	conflict := func(what, a, b string) error {
		if a != "" && b != "" && a != b {
			return fmt.Errorf("%s %q conflicts with %q given earlier", what, b, a)
		}
		return nil
	}
	if err := errors.Join(
		conflict("FSTYPE", t.FSType, o.FSType),
		conflict("ROOTFLAGS", t.RootFlags, o.RootFlags),
		conflict("OPTIONS", t.Options.String(), o.Options.String()),
		conflict("device", devicePath(t.Device), devicePath(o.Device)),
	); err != nil {
		return err
	}
	if t.FSType == "" {
		t.FSType = o.FSType
	}
	if t.RootFlags == "" {
		t.RootFlags = o.RootFlags
	}
	if t.Options.isZero() {
		t.Options = o.Options
	}
	if t.Device == nil {
		t.Device = o.Device
	}
	for _, s := range o.Servers {
		t.Servers = addServer(t.Servers, s)
	}
	return nil
}

func (c *Config) addBreak(p Param) error {
	b := BreakPoint(p.Value)
	switch b {
	case "":
		b = BreakPrePivot
	case BreakPreMount, BreakMount, BreakPrePivot:
	default:
		return fmt.Errorf("expected no value or one of %s, %s, %s", BreakPreMount, BreakMount, BreakPrePivot)
	}
	if !c.BreakAt(b) {
		c.Breaks = append(c.Breaks, b)
	}
	return nil
}

// BreakAt reports whether the command line asked for a shell at b.
func (c *Config) BreakAt(b BreakPoint) bool {
	for _, have := range c.Breaks {
		if have == b {
			return true
		}
	}
	return false
}

// Validate reports what Parse could not: a command line that parsed but
// cannot boot.
func (c *Config) Validate() error {
	var errs []error
	if c.NBD == nil && !c.FromDHCP {
		errs = append(errs, errors.New("no nbdroot= or root=nbd:… given (nbdroot=dhcp takes the server from the DHCP root-path)"))
	}
	if c.NBD != nil && len(c.NBD.Servers) == 0 {
		errs = append(errs, errors.New("nbdroot= names no server"))
	}
	if c.Connections < 1 || c.Connections > MaxConnections {
		errs = append(errs, fmt.Errorf("nbdboot.connections=%d: expected a number from 1 to %d", c.Connections, MaxConnections))
	}
	return errors.Join(errs...)
}

// String is a one-line summary for the boot log.
func (c *Config) String() string {
	var b strings.Builder
	switch {
	case c.NBD != nil:
		b.WriteString("root=" + c.NBD.String())
	case c.FromDHCP:
		b.WriteString("root=dhcp")
	default:
		b.WriteString("root=none")
	}
	dev := defaultDevice
	if c.RootDevice != nil {
		dev = *c.RootDevice
	}
	mode := "rw"
	if c.ReadOnly {
		mode = "ro"
	}
	fmt.Fprintf(&b, " device=%s %s", dev.Path(), mode)
	if c.RootFSType != "" {
		fmt.Fprintf(&b, " rootfstype=%s", c.RootFSType)
	}
	if c.RootFlags != "" {
		fmt.Fprintf(&b, " rootflags=%s", c.RootFlags)
	}
	if len(c.IP) > 0 {
		fmt.Fprintf(&b, " ip=%s", strings.Join(c.IP, " ip="))
	}
	fmt.Fprintf(&b, " init=%s connections=%d timeout=%s deadconn=%s retry=%s",
		c.Init, c.Connections, c.RequestTimeout, c.DeadConnTimeout, c.Retry)
	if c.Overlay != OverlayNone {
		fmt.Fprintf(&b, " overlay=%s", c.Overlay)
	}
	if c.ClientID != "" {
		fmt.Fprintf(&b, " clientid=%s", c.ClientID)
	}
	if len(c.Modules) > 0 {
		fmt.Fprintf(&b, " modules=%s", strings.Join(c.Modules, ","))
	}
	fmt.Fprintf(&b, " shell=%t debug=%t", c.Shell, c.Debug)
	for _, br := range c.Breaks {
		fmt.Fprintf(&b, " break=%s", br)
	}
	if len(c.InitArgs) > 0 {
		fmt.Fprintf(&b, " -- %s", strings.Join(c.InitArgs, " "))
	}
	return b.String()
}

func isNBDValue(v string) bool {
	return len(v) >= 4 && strings.EqualFold(v[:4], "nbd:") ||
		len(v) >= 4 && strings.EqualFold(v[:4], "nbds") ||
		len(v) >= 4 && strings.EqualFold(v[:4], "nbd+")
}

func needValue(p Param) error {
	if !p.HasValue || p.Value == "" {
		return errors.New("needs a value")
	}
	return nil
}

// setSeconds sets *dst from a duration parameter, leaving it alone on error.
func setSeconds(dst *time.Duration, p Param) error {
	d, err := parseSeconds(p.Value, p.HasValue, 0)
	if err == nil {
		*dst = d
	}
	return err
}

// setBool handles "key" (true) and key=1|0|yes|no|on|off|true|false|y|n.
func setBool(dst *bool, p Param) error {
	if !p.HasValue {
		*dst = true
		return nil
	}
	switch strings.ToLower(p.Value) {
	case "1", "y", "yes", "on", "true":
		*dst = true
	case "0", "n", "no", "off", "false":
		*dst = false
	default:
		return errors.New("expected no value, 1 or 0 (yes/no, on/off, true/false)")
	}
	return nil
}

func checkClientID(s string) error {
	const want = "expected 1 to 64 characters from A-Z a-z 0-9 . _ : -"
	if s == "" || len(s) > 64 {
		return errors.New(want)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:-", c) >= 0) {
			return errors.New(want)
		}
	}
	return nil
}

func parseModuleList(s string) ([]string, error) {
	var mods []string
	for m := range strings.SplitSeq(s, ",") {
		if m == "" {
			continue
		}
		for i := 0; i < len(m); i++ {
			c := m[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return nil, fmt.Errorf("module %q: expected a comma-separated list of module names like virtio_net,e1000", m)
			}
		}
		mods = append(mods, m)
	}
	if len(mods) == 0 {
		return nil, errors.New("expected a comma-separated list of module names like virtio_net,e1000")
	}
	return mods, nil
}
