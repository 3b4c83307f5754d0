package labimage

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// netkeepUnit and netkeepScript leave the interface nbdboot booted over to
// nbdboot at every boot: NetworkManager or systemd-networkd taking it over
// would drop its address (and with it the root) or renew its lease under
// another name. The interface is the one nbdboot gave a route before any
// network service started; it is marked unmanaged by MAC address, which a
// udev rename (eth0 -> ens2) does not change.
const (
	netkeepUnitPath   = "/etc/systemd/system/nbdboot-netkeep.service"
	netkeepScriptPath = "/usr/local/lib/nbdboot/netkeep"
	netkeepWants      = "/etc/systemd/system/sysinit.target.wants/nbdboot-netkeep.service"
)

const netkeepUnit = `# Installed by nbdboot image.
[Unit]
Description=Leave the network boot interface to nbdboot
DefaultDependencies=no
ConditionPathExists=/run/nbdboot/state.json
Before=network-pre.target NetworkManager.service systemd-networkd.service networking.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=` + netkeepScriptPath + `

[Install]
WantedBy=sysinit.target
`

const netkeepScript = `#!/bin/sh
# Installed by nbdboot image: marks the interface nbdboot booted over
# unmanaged for NetworkManager and systemd-networkd, by MAC address.
iface=$(awk 'NR > 1 && $1 != "lo" { print $1; exit }' /proc/net/route)
if [ -z "$iface" ] || [ ! -r "/sys/class/net/$iface/address" ]; then
	echo "nbdboot-netkeep: no interface with a route; nothing to keep"
	exit 0
fi
mac=$(cat "/sys/class/net/$iface/address")
mkdir -p /run/NetworkManager/conf.d /run/systemd/network
printf '[keyfile]\nunmanaged-devices=mac:%s\n' "$mac" >/run/NetworkManager/conf.d/90-nbdboot.conf
printf '[Match]\nMACAddress=%s\n\n[Link]\nUnmanaged=yes\n' "$mac" >/run/systemd/network/01-nbdboot.network
echo "nbdboot-netkeep: $iface ($mac) is left to nbdboot"
`

// network installs the netkeep unit and comments out ifupdown's stanzas
// for interfaces other than lo (ifupdown would run a DHCP client of its
// own on the boot interface).
func (t *tree) network() error {
	for _, f := range []struct {
		path string
		data string
		perm os.FileMode
	}{{netkeepScriptPath, netkeepScript, 0o755}, {netkeepUnitPath, netkeepUnit, 0o644}} {
		if old, err := t.read(f.path); err != nil {
			return err
		} else if string(old) == f.data {
			continue
		}
		if err := t.write(f.path, []byte(f.data), f.perm); err != nil {
			return err
		}
	}
	if cur, err := os.Readlink(t.path(netkeepWants)); err != nil || cur != netkeepUnitPath {
		if err := t.symlink(netkeepWants, netkeepUnitPath); err != nil {
			return err
		}
		t.note(netkeepUnitPath, "added and enabled: marks the boot interface unmanaged for NetworkManager and systemd-networkd at boot (by MAC address)")
	}
	files := []string{"/etc/network/interfaces"}
	if m, _ := filepath.Glob(t.path("/etc/network/interfaces.d/*")); len(m) > 0 {
		for _, p := range m {
			rel, _ := filepath.Rel(t.root, p)
			files = append(files, "/"+filepath.ToSlash(rel))
		}
	}
	for _, p := range files {
		if err := t.ifupdown(p); err != nil {
			return err
		}
	}
	return nil
}

// ifupdown comments out the auto, allow-* and iface stanzas of file p for
// interfaces other than lo.
func (t *tree) ifupdown(p string) error {
	old, err := t.read(p)
	if err != nil || old == nil {
		return err
	}
	var out bytes.Buffer
	var ifaces []string
	inStanza := false
	for _, line := range strings.SplitAfter(string(old), "\n") {
		f := strings.Fields(line)
		indented := len(line) > 0 && (line[0] == ' ' || line[0] == '\t')
		switch {
		case len(f) >= 2 && (f[0] == "auto" || strings.HasPrefix(f[0], "allow-")):
			var keep []string
			for _, i := range f[1:] {
				if i == "lo" {
					keep = append(keep, i)
				} else {
					ifaces = append(ifaces, i)
				}
			}
			inStanza = false
			if len(keep) == len(f)-1 {
				out.WriteString(line)
				continue
			}
			out.WriteString("#nbdboot# " + line)
			if len(keep) > 0 {
				out.WriteString(f[0] + " " + strings.Join(keep, " ") + "\n")
			}
			continue
		case len(f) >= 2 && f[0] == "iface":
			inStanza = f[1] != "lo"
			if inStanza {
				ifaces = append(ifaces, f[1])
			}
		case len(f) > 0 && !indented && !strings.HasPrefix(f[0], "#"):
			inStanza = false
		}
		if inStanza && len(f) > 0 {
			out.WriteString("#nbdboot# " + line)
			continue
		}
		out.WriteString(line)
	}
	if len(ifaces) == 0 {
		return nil
	}
	if err := t.write(p, out.Bytes(), 0o644); err != nil {
		return err
	}
	t.note(p, "commented out %s: the boot interface is nbdboot's", strings.Join(dedupe(ifaces), ", "))
	return nil
}

func dedupe(list []string) []string {
	var out []string
	for _, s := range list {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
