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

	"github.com/nbdboot/nbdboot/internal/ratelog"
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

// offerTTL is how long an OFFER keeps its address for the REQUEST that
// follows it (a client sends that within a second or two).
const offerTTL = 15 * time.Second

// maxPendingOffers caps the OFFERs to machines not in [[pxe.machine]]
// that wait for their REQUEST: a client inventing MAC addresses cannot
// hold the range with offers it never takes.
const maxPendingOffers = 64

// Why a new client gets no address (logged, and a NAK to a REQUEST).
var (
	errRangeFull     = errors.New("the address range is full")
	errReserved      = errors.New("the free addresses left are kept for the machines in [[pxe.machine]]")
	errNotListed     = errors.New("not in [[pxe.machine]] and known_only is set")
	errTooManyOffers = fmt.Errorf("%d offers to machines not in [[pxe.machine]] wait for their REQUEST already", maxPendingOffers)
	errNewLeaseRate  = errors.New("new_leases_per_minute reached")
)

// leasePolicy is who may take a new address: the machines listed
// always (an address is kept for each of them), others at the gate's
// rate while the range has addresses beyond those kept, unless
// knownOnly.
type leasePolicy struct {
	listed    map[string]bool // MAC → listed
	knownOnly bool
	gate      *ratelog.Gate // nil: no rate bound
}

// offered is an OFFER waiting for its REQUEST.
type offered struct {
	ip      string
	expires time.Time
}

// leases is full-DHCP mode's table, kept in a JSON file (written by
// rename) so a restart hands every machine its address again.
type leases struct {
	mu     sync.Mutex
	pool   pool
	ttl    time.Duration
	now    func() time.Time
	path   string
	policy leasePolicy
	byMAC  map[string]*lease
	byIP   map[string]*lease
	// offers and offeredIP are the OFFERs not yet taken (at most one per
	// address of the range).
	offers    map[string]offered // MAC →
	offeredIP map[string]string  // IP → MAC
}

// openLeases loads path (missing: no leases yet).
func openLeases(path string, p pool, ttl time.Duration, now func() time.Time) (*leases, error) {
	l := &leases{pool: p, ttl: ttl, now: now, path: path, byMAC: map[string]*lease{}, byIP: map[string]*lease{},
		offers: map[string]offered{}, offeredIP: map[string]string{}}
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

// offer is the address for mac: its lease's or its pending offer's,
// else, when the policy admits a new client, the first free one (never
// leased or expired, not offered to another), kept for offerTTL. The
// error says why there is none.
func (l *leases) offer(mac string) (net.IP, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.byMAC[mac]; e != nil {
		return net.ParseIP(e.IP).To4(), nil
	}
	now := l.now()
	l.dropOffersLocked(now)
	if o, ok := l.offers[mac]; ok {
		return net.ParseIP(o.ip).To4(), nil
	}
	if err := l.admitLocked(mac, now); err != nil {
		return nil, err
	}
	for v := l.pool.first; ; v++ {
		if ip := ip4(v); l.freeLocked(ip.String(), mac, now) {
			l.offers[mac] = offered{ip: ip.String(), expires: now.Add(offerTTL)}
			l.offeredIP[ip.String()] = mac
			return ip, nil
		}
		if v == l.pool.last {
			return nil, errRangeFull
		}
	}
}

// holds reports whether mac has a lease (a machine that came before, not
// a new one; an offer, which costs a client nothing, does not count).
func (l *leases) holds(mac string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byMAC[mac] != nil
}

// freeLocked reports whether address k may go to mac: not leased to
// another (unless expired), not offered to another.
func (l *leases) freeLocked(k, mac string, now time.Time) bool {
	if e := l.byIP[k]; e != nil && e.MAC != mac && now.Before(e.Expires) {
		return false
	}
	o, ok := l.offeredIP[k]
	return !ok || o == mac
}

// dropOffersLocked forgets the offers not taken in time.
func (l *leases) dropOffersLocked(now time.Time) {
	for mac, o := range l.offers {
		if now.After(o.expires) {
			delete(l.offers, mac)
			delete(l.offeredIP, o.ip)
		}
	}
}

// admitLocked reports why mac, holding no address, may not have a new
// one (nil: it may). A listed machine always may: the others may only
// while more addresses are free than listed machines hold none, at the
// policy's rate, with at most maxPendingOffers offers waiting.
func (l *leases) admitLocked(mac string, now time.Time) error {
	if l.policy.listed[mac] {
		return nil
	}
	if l.policy.knownOnly {
		return errNotListed
	}
	pending := 0
	for m := range l.offers {
		if !l.policy.listed[m] {
			pending++
		}
	}
	if pending >= maxPendingOffers {
		return errTooManyOffers
	}
	if l.policy.gate != nil && !l.policy.gate.Ready() {
		return errNewLeaseRate
	}
	free := 0
	for v := l.pool.first; ; v++ {
		if l.freeLocked(ip4(v).String(), "", now) {
			free++
		}
		if v == l.pool.last {
			break
		}
	}
	kept := 0
	for m := range l.policy.listed {
		_, offered := l.offers[m]
		if e := l.byMAC[m]; !offered && (e == nil || now.After(e.Expires)) {
			kept++
		}
	}
	if free == 0 {
		return errRangeFull
	}
	if free <= kept {
		return errReserved
	}
	if l.policy.gate != nil && !l.policy.gate.Allow() {
		return errNewLeaseRate
	}
	return nil
}

// ack leases ip to mac when it is mac's, or free and the policy admits
// mac, and saves the table. It returns false, with the reason when it is
// the policy's, when ip is not mac's to have; an error with true when the
// table could not be saved.
func (l *leases) ack(mac string, ip net.IP) (bool, error) {
	if !l.pool.contains(ip) {
		return false, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := ip.String()
	l.dropOffersLocked(now)
	if !l.freeLocked(k, mac, now) {
		return false, nil
	}
	old := l.byMAC[mac]
	if o, ok := l.offers[mac]; ok {
		delete(l.offers, mac)
		delete(l.offeredIP, o.ip)
	} else if old == nil {
		if err := l.admitLocked(mac, now); err != nil {
			return false, err
		}
	}
	e := &lease{MAC: mac, IP: k, Expires: now.Add(l.ttl)}
	if old != nil && old.IP == k && e.Expires.Sub(old.Expires) < time.Minute {
		// A renewal in quick succession: the file need not be rewritten
		// (a client renewing in a loop cannot make the server write).
		old.Expires = e.Expires
		return true, nil
	}
	if old != nil {
		delete(l.byIP, old.IP)
	}
	if prev := l.byIP[k]; prev != nil {
		delete(l.byMAC, prev.MAC)
	}
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
