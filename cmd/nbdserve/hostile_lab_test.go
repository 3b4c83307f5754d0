package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/protocol"
)

// The networks the hostile-client suite runs on: loopback, where every
// client is a loopback address of this host, and the namespace lab, where
// the server and each client machine have a network namespace of their
// own on one bridge, as machines on a LAN (so the server sees their
// link-layer addresses as it would in a classroom).

// origin is where a test client connects from: a network namespace of
// the lab (nil: this one) and a local IP address ("": any).
type origin struct {
	ns *vm.Lab
	ip string
}

func (o origin) String() string {
	ip := o.ip
	if ip == "" {
		ip = "any address"
	}
	if o.ns != nil {
		return ip + " in " + o.ns.NS
	}
	return ip
}

// hostileNet is a network an attack runs on: how the server starts
// there, the attacker's machine, the well-behaved client's (victim) and
// more well-behaved machines (others, the victim first).
type hostileNet struct {
	name     string
	start    func(t *testing.T, args ...string) *proc
	attacker origin
	victim   origin
	others   []origin
	lab      *vm.Lab // nil on loopback
}

// loopback: the attacker at 127.0.0.1, the others at 127.0.0.2 to .4.
var loopback = hostileNet{name: "loopback", start: startServer,
	attacker: origin{ip: "127.0.0.1"}, victim: origin{ip: "127.0.0.2"},
	others: []origin{{ip: "127.0.0.2"}, {ip: "127.0.0.3"}, {ip: "127.0.0.4"}}}

// labNet makes a namespace lab: nbdserve at vm.LabServerIP, the attacker
// machine at 10.0.3.20, the victim at .30 and another machine at .40.
func labNet(t *testing.T) hostileNet {
	t.Helper()
	lab := vm.NewLab(t, 0)
	machine := func(ip string) origin { return origin{ns: lab.Peer(t, ip), ip: ip} }
	victim := machine("10.0.3.30")
	return hostileNet{name: "lab", lab: lab,
		start: func(t *testing.T, args ...string) *proc {
			t.Helper()
			all := append([]string{"-listen", vm.LabServerIP + ":0", "-debug"}, args...)
			return startCommand(t, lab.Command(nbdserveBin, all...))
		},
		attacker: machine("10.0.3.20"), victim: victim,
		others: []origin{victim, machine("10.0.3.40")}}
}

// eachNet runs an attack on loopback and in the namespace lab.
func eachNet(t *testing.T, attack func(t *testing.T, n hostileNet)) {
	t.Run("loopback", func(t *testing.T) { attack(t, loopback) })
	t.Run("lab", func(t *testing.T) { attack(t, labNet(t)) })
}

// addAddresses gives the attacker's NIC k more addresses, 10.0.3.100 on,
// as a student with root can: the same machine, k more source addresses.
func (n hostileNet) addAddresses(t *testing.T, k int) []origin {
	t.Helper()
	var batch strings.Builder
	out := make([]origin, k)
	for i := range k {
		ip := fmt.Sprintf("10.0.3.%d", 100+i)
		fmt.Fprintf(&batch, "addr add %s/%d dev eth0\n", ip, vm.LabPrefix)
		out[i] = origin{ns: n.attacker.ns, ip: ip}
	}
	cmd := exec.Command("ip", "-n", n.attacker.ns.NS, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch (addresses of the attacker): %v: %s", err, b)
	}
	return out
}

// TestHostileManyAddresses: a student adds 50 addresses to its NIC and
// makes every one of them hold what an address may: 25 send a 32 MiB
// READ each, 25 a 4 MiB READ each, none reads its replies. Counted by
// address that would take the whole buffer budget (each address's share
// shrinks as addresses join, after the first took theirs); counted by
// machine (its MAC address) it is one share. The victim's READs are
// answered within a second meanwhile.
func TestHostileManyAddresses(t *testing.T) {
	n := labNet(t)
	p, head := startHostileOn(t, n, "-reply-timeout", "30s")
	addrs := n.addAddresses(t, 50)
	done := during(t, n, p, head, "ro", 2*time.Second)
	for i, a := range addrs {
		c := dialFrom(t, p.addr, a, "ro")
		size := uint32(32 << 20)
		if i >= 25 {
			size = 4 << 20
		}
		if err := c.send(protocol.CmdRead, 0, size, nil); err != nil {
			t.Fatal(err)
		}
	}
	done()
}

// TestHostileManyAddressesNegotiation: the negotiation flood from the 50
// addresses of one machine, two connections each: the slots are shared by
// machine, so other machines still connect and read within a second.
func TestHostileManyAddressesNegotiation(t *testing.T) {
	n := labNet(t)
	hostileNegotiationFlood(t, n, n.addAddresses(t, 50), 2)
}
