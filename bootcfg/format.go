package bootcfg

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nbdboot/nbdboot/protocol"
)

// Format writes c back as a kernel command line that Parse reads into the
// same Config (Params aside, which Format does not keep: parameters
// nbdboot ignores, such as console=, are the writer's to add). The PXE and
// boot-media builders write command lines with it. The target goes in the
// nbd:// form, or in dracut's nbd:HOST:PORT/EXPORT:FSTYPE:ROOTFLAGS:OPTIONS
// form when it carries a file system type, flags or options; further
// servers follow as nbdroot=nbd://… values for the same export. Format
// fails on what no form can carry: a target device (",nbdX") with a port
// and an export, or dracut fields holding ':'.
func (c *Config) Format() (string, error) {
	var ps []Param
	add := func(key, value string) { ps = append(ps, Param{Key: key, Value: value, HasValue: true}) }
	flag := func(key string) { ps = append(ps, Param{Key: key}) }
	switch {
	case c.FromDHCP:
		add("nbdroot", "dhcp")
	case c.NBD != nil:
		vals, err := c.NBD.rootValues()
		if err != nil {
			return "", fmt.Errorf("format nbdroot=: %w", err)
		}
		for _, v := range vals {
			add("nbdroot", v)
		}
	}
	if c.RootDevice != nil {
		add("root", c.RootDevice.Path())
	}
	for _, ip := range c.IP {
		add("ip", ip)
	}
	if c.RootFSType != "" {
		add("rootfstype", c.RootFSType)
	}
	if c.RootFlags != "" {
		add("rootflags", c.RootFlags)
	}
	if c.ReadOnly {
		flag("ro")
	} else {
		flag("rw")
	}
	if c.Init != DefaultInit {
		add("init", c.Init)
	}
	if c.connectionsSet || c.Connections != DefaultConnections {
		add("nbdboot.connections", strconv.Itoa(c.Connections))
	}
	if c.timeoutSet || c.RequestTimeout != DefaultRequestTimeout {
		add("nbdboot.timeout", formatSeconds(c.RequestTimeout))
	}
	if c.DeadConnTimeout != DefaultDeadConnTimeout {
		add("nbdboot.deadconn", formatSeconds(c.DeadConnTimeout))
	}
	if c.Retry != DefaultRetry {
		add("nbdboot.retry", formatSeconds(c.Retry))
	}
	if c.Debug {
		flag("nbdboot.debug")
	}
	if c.Overlay != OverlayNone {
		add("nbdboot.overlay", string(c.Overlay))
	}
	if c.Attach == AttachIoctl {
		add("nbdboot.attach", string(AttachIoctl))
	}
	if c.ClientID != "" {
		add("nbdboot.clientid", c.ClientID)
	}
	if len(c.Modules) > 0 {
		add("nbdboot.modules", strings.Join(c.Modules, ","))
	}
	if !c.Shell {
		add("nbdboot.shell", "0")
	}
	for _, b := range c.Breaks {
		add("nbdboot.break", string(b))
	}
	words := make([]string, 0, len(ps)+1+len(c.InitArgs))
	for _, p := range ps {
		if strings.ContainsRune(p.Value, '"') {
			return "", fmt.Errorf("format %s: a value holding '\"' cannot be written on the command line", p.Key)
		}
		words = append(words, p.String())
	}
	if len(c.InitArgs) > 0 {
		words = append(words, "--")
		words = append(words, c.InitArgs...)
	}
	line := strings.Join(words, " ")
	if _, args := Tokenize(line); !slices.Equal(args, c.InitArgs) {
		return "", fmt.Errorf("format: init arguments %q do not survive the command line (as %q)", c.InitArgs, args)
	}
	return line, nil
}

// rootValues writes t as nbdroot= values that parse and merge back into t.
func (t Target) rootValues() ([]string, error) {
	if len(t.Servers) == 0 {
		return nil, errors.New("the target names no server")
	}
	first := Target{Servers: t.Servers[:1], Export: t.Export}.URI()
	if t.FSType != "" || t.RootFlags != "" || !t.Options.isZero() {
		var err error
		if first, err = t.dracut(); err != nil {
			return nil, err
		}
	}
	vals := []string{first}
	for _, s := range t.Servers[1:] {
		vals = append(vals, Target{Servers: []Server{s}, Export: t.Export}.URI())
	}
	if t.Device != nil {
		v, err := t.debian()
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	return vals, nil
}

// dracut writes the first server in dracut's form with every field.
func (t Target) dracut() (string, error) {
	opts := t.Options.String()
	for what, v := range map[string]string{"export": t.Export, "FSTYPE": t.FSType, "ROOTFLAGS": t.RootFlags, "OPTIONS": opts} {
		if strings.Contains(v, ":") {
			return "", fmt.Errorf("%s %q holds ':', which dracut's form cannot carry", what, v)
		}
	}
	s := t.Servers[0]
	return fmt.Sprintf("nbd:%s:%d/%s:%s:%s:%s", hostPort(s.Host, 0, false), s.Port, t.Export, t.FSType, t.RootFlags, opts), nil
}

// debian writes the device in initramfs-tools' HOST,PORT|EXPORT,nbdX form,
// which merges into the target: it holds a port or an export, not both.
func (t Target) debian() (string, error) {
	s := t.Servers[0]
	switch {
	case t.Export == "" && !strings.Contains(s.Host, ":"):
		return fmt.Sprintf("%s,%d,nbd%d", s.Host, s.Port, t.Device.Index), nil
	case s.Port == protocol.DefaultPort && t.Export != "" && !allDigits(t.Export) && !strings.ContainsAny(t.Export, ", \t\"") && !strings.Contains(s.Host, ":"):
		return fmt.Sprintf("%s,%s,nbd%d", s.Host, t.Export, t.Device.Index), nil
	}
	return "", fmt.Errorf("device %s with server %s and export %q: no nbdroot= form carries all three", t.Device.Path(), s, t.Export)
}
