package server

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestNeighborKeys: a peer in the neighbour table is keyed by its
// link-layer address (two addresses of one NIC: one key), others and
// loopback by IP address. An address the last dump lacks makes a new
// dump, unless a dump lacked it within neighborTTL; the table is dumped
// again after neighborTTL.
func TestNeighborKeys(t *testing.T) {
	now := time.Unix(1000, 0)
	dumps := 0
	table := map[netip.Addr]string{
		netip.MustParseAddr("10.0.3.20"): "ether/02:00:00:00:00:01",
		netip.MustParseAddr("fe80::1"):   "ether/02:00:00:00:00:02",
	}
	n := newNeighbors(func() (map[netip.Addr]string, error) {
		dumps++
		out := map[netip.Addr]string{}
		for k, v := range table {
			out[k] = v
		}
		return out, nil
	}, func() time.Time { return now })
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 9} }
	steps := []struct {
		ip, want string
		dumps    int
	}{
		{"10.0.3.20", "ether/02:00:00:00:00:01", 1},
		{"fe80::1", "ether/02:00:00:00:00:02", 1},
		{"::ffff:10.0.3.21", "ether/02:00:00:00:00:01", 2}, // new since the dump
		{"10.0.3.21", "ether/02:00:00:00:00:01", 2},
		{"10.9.0.1", "10.9.0.1", 3}, // behind a router: not a neighbour
		{"10.9.0.1", "10.9.0.1", 3}, // known to be missing
		{"127.0.0.2", "127.0.0.2", 3},
	}
	for i, tt := range steps {
		if i == 2 {
			table[netip.MustParseAddr("10.0.3.21")] = "ether/02:00:00:00:00:01"
		}
		if got := n.key(tcp(tt.ip)); got != tt.want || dumps != tt.dumps {
			t.Errorf("%s: key %q after %d dumps, want %q after %d", tt.ip, got, dumps, tt.want, tt.dumps)
		}
	}
	table[netip.MustParseAddr("10.0.3.20")] = "ether/02:00:00:00:00:04"
	now = now.Add(neighborTTL)
	if got := n.key(tcp("10.0.3.20")); got != "ether/02:00:00:00:00:04" || dumps != 4 {
		t.Errorf("a neighbour that changed, after neighborTTL: key %q after %d dumps", got, dumps)
	}
	if len(n.absent) != 0 {
		t.Errorf("%d absent addresses kept past neighborTTL", len(n.absent))
	}
}
