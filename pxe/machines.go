package pxe

import (
	"fmt"
	"net"
	"strings"
)

// machines is the per-MAC table with the room's default.
type machines struct {
	def   Machine
	byMAC map[string]Machine // key: net.HardwareAddr.String()
}

// newMachines checks every MAC and refuses one listed twice.
func newMachines(def Machine, list []Machine) (*machines, error) {
	m := &machines{def: def, byMAC: make(map[string]Machine, len(list))}
	for _, e := range list {
		hw, err := net.ParseMAC(e.MAC)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Errorf("pxe: machine mac %q: not an Ethernet address", e.MAC)
		}
		k := hw.String()
		if _, dup := m.byMAC[k]; dup {
			return nil, fmt.Errorf("pxe: machine %s listed twice", k)
		}
		e.MAC = k
		if e.Export == "" {
			e.Export = def.Export
		}
		m.byMAC[k] = e
	}
	return m, nil
}

// choice is what mac boots; known tells a listed machine from the
// default.
func (m *machines) choice(mac net.HardwareAddr) (c Machine, known bool) {
	if e, ok := m.byMAC[mac.String()]; ok {
		return e, true
	}
	c = m.def
	c.MAC = mac.String()
	return c, false
}

// cmdline expands the template for machine c: ${server}, ${export} and
// ${mac}, then c's extra words.
func cmdline(template, server string, c Machine) string {
	s := strings.NewReplacer("${server}", server, "${export}", c.Export, "${mac}", c.MAC).Replace(template)
	if c.Append != "" {
		s += " " + c.Append
	}
	return s
}
