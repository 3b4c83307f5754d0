package media

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/nbdboot/nbdboot/bootcfg"
)

// ipxeSetting is an iPXE setting reference such as ${next-server}, which
// iPXE replaces before it runs a script line.
var ipxeSetting = regexp.MustCompile(`\$\{[A-Za-z0-9_./:-]+\}`)

// ipxeExample stands in for settings when a line is checked at build time
// (TEST-NET-1, RFC 5737).
const ipxeExample = "192.0.2.1"

// MaxCmdline is the longest command line a medium takes.
const MaxCmdline = 1900

// checkCmdline checks a kernel command line before it goes into the boot
// loaders' configurations: printable ASCII without quotes (GRUB, ISOLINUX
// and iPXE quote differently; nbdboot's parameters never need them), and
// nbdboot's own parser must accept it and find the root in it. With
// ipxeVars, ${…} settings are allowed (iPXE expands them on the floppy).
func checkCmdline(s string, ipxeVars bool) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("command line: empty; it must name the root, e.g. -cmdline \"ip=dhcp nbdroot=nbd://SERVER/EXPORT\"")
	}
	if err := checkText("command line", s); err != nil {
		return err
	}
	if len(s) > MaxCmdline {
		return fmt.Errorf("command line: %d bytes, more than %d (x86 Linux keeps 2048, and the boot loaders add BOOT_IMAGE= and initrd=)", len(s), MaxCmdline)
	}
	parsed := s
	if ipxeVars {
		parsed = ipxeSetting.ReplaceAllString(s, ipxeExample)
	}
	if strings.Contains(parsed, "$") {
		return fmt.Errorf("command line: %q: a $ is not allowed here (the floppy alone expands iPXE's ${settings})", s)
	}
	c, err := bootcfg.Parse(parsed)
	if err != nil {
		if parsed != s {
			return fmt.Errorf("command line (iPXE's ${settings} read as %s): %w", ipxeExample, err)
		}
		return fmt.Errorf("command line: %w", err)
	}
	if c.NBD == nil && !c.FromDHCP {
		return fmt.Errorf("command line: %q names no root: give nbdroot=nbd://SERVER/EXPORT (or nbdroot=dhcp)", s)
	}
	return nil
}

// checkText rejects what would break a boot loader's configuration line.
func checkText(what, s string) error {
	for i, r := range s {
		switch {
		case r == '\'' || r == '"' || r == '\\':
			return fmt.Errorf("%s: %q: quotes and backslashes are not allowed (character %d)", what, s, i)
		case r < ' ' || r > '~':
			return fmt.Errorf("%s: %q: only printable ASCII is allowed (character %d is %U)", what, s, i, r)
		}
	}
	return nil
}

// checkURL checks a URL the floppy fetches: http:// (Debian's iPXE has no
// TLS trust anchors for a lab server), no spaces or quotes.
func checkURL(s string) error {
	if err := checkText("URL", s); err != nil {
		return err
	}
	if strings.Contains(s, " ") {
		return fmt.Errorf("URL %q: contains a space", s)
	}
	u, err := url.Parse(ipxeSetting.ReplaceAllString(s, ipxeExample))
	if err != nil {
		return fmt.Errorf("URL %q: %w", s, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("URL %q: want http://HOST[:PORT]/PATH (HOST may be ${server})", s)
	}
	return nil
}

// grubWords quotes each word of a checked command line for grub.cfg: in
// single quotes GRUB expands nothing.
func grubWords(s string) string {
	w := strings.Fields(s)
	for i := range w {
		w[i] = "'" + w[i] + "'"
	}
	return strings.Join(w, " ")
}
