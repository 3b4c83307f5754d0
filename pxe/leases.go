package pxe

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// maxPool caps the range of full-DHCP mode: the lease table holds at most
// one entry per address, so a client inventing MAC addresses cannot grow
// it past this.
const maxPool = 4096

// pool is the address range of full-DHCP mode.
type pool struct{ first, last uint32 }

func ip4(v uint32) net.IP {
	b := make(net.IP, 4)
	binary.BigEndian.PutUint32(b, v)
	return b
}

func u32(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }

// pool parses and checks the range.
func (d *DHCPConfig) pool() (pool, error) {
	a, b := net.ParseIP(d.RangeStart).To4(), net.ParseIP(d.RangeEnd).To4()
	if a == nil || b == nil {
		return pool{}, fmt.Errorf("pxe: dhcp range %q-%q: not IPv4 addresses", d.RangeStart, d.RangeEnd)
	}
	p := pool{u32(a), u32(b)}
	if p.last < p.first || p.last-p.first >= maxPool {
		return pool{}, fmt.Errorf("pxe: dhcp range %s-%s: empty or more than %d addresses", a, b, maxPool)
	}
	return p, nil
}

func (p pool) contains(ip net.IP) bool {
	if ip.To4() == nil {
		return false
	}
	v := u32(ip)
	return v >= p.first && v <= p.last
}

// lease is one client's address.
type lease struct {
	MAC     string    `json:"mac"`
	IP      string    `json:"ip"`
	Expires time.Time `json:"expires"`
}

// leases is full-DHCP mode's table, kept in a JSON file (written by
// rename) so a restart hands every machine its address again.
type leases struct {
	mu    sync.Mutex
	pool  pool
	ttl   time.Duration
	now   func() time.Time
	path  string
	byMAC map[string]*lease
	byIP  map[string]*lease
}

// openLeases loads path (missing: no leases yet).
func openLeases(path string, p pool, ttl time.Duration, now func() time.Time) (*leases, error) {
	l := &leases{pool: p, ttl: ttl, now: now, path: path, byMAC: map[string]*lease{}, byIP: map[string]*lease{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pxe: read leases: %w", err)
	}
	var list []lease
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("pxe: leases %s: %w", path, err)
	}
	for i := range list {
		e := &list[i]
		if ip := net.ParseIP(e.IP); p.contains(ip) && l.byIP[e.IP] == nil && l.byMAC[e.MAC] == nil {
			l.byMAC[e.MAC], l.byIP[e.IP] = e, e
		}
	}
	return l, nil
}

// offer is the address for mac: its lease's, else the first free one
// (never leased or expired), or nil when the range is full.
func (l *leases) offer(mac string) net.IP {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.byMAC[mac]; e != nil {
		return net.ParseIP(e.IP).To4()
	}
	now := l.now()
	for v := l.pool.first; ; v++ {
		ip := ip4(v)
		if e := l.byIP[ip.String()]; e == nil || now.After(e.Expires) {
			return ip
		}
		if v == l.pool.last {
			return nil
		}
	}
}

// ack leases ip to mac when it is mac's or free, and saves the table.
func (l *leases) ack(mac string, ip net.IP) (bool, error) {
	if !l.pool.contains(ip) {
		return false, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := ip.String()
	if e := l.byIP[k]; e != nil && e.MAC != mac && now.Before(e.Expires) {
		return false, nil
	}
	if old := l.byMAC[mac]; old != nil {
		delete(l.byIP, old.IP)
	}
	if old := l.byIP[k]; old != nil {
		delete(l.byMAC, old.MAC)
	}
	e := &lease{MAC: mac, IP: k, Expires: now.Add(l.ttl)}
	l.byMAC[mac], l.byIP[k] = e, e
	return true, l.saveLocked()
}

// saveLocked writes the table to a temporary file and renames it over
// the old one.
func (l *leases) saveLocked() error {
	list := make([]lease, 0, len(l.byMAC))
	for _, e := range l.byMAC {
		list = append(list, *e)
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	tmp := l.path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return fmt.Errorf("pxe: save leases: %w", err)
	}
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("pxe: save leases: %w", err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fmt.Errorf("pxe: save leases: %w", err)
	}
	return nil
}

// addressOf is the address leased to mac, unless the lease has expired.
func (l *leases) addressOf(mac string) (net.IP, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.byMAC[mac]
	if e == nil || l.now().After(e.Expires) {
		return nil, false
	}
	return net.ParseIP(e.IP).To4(), true
}
