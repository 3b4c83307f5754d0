package pxe

import "sync"

// slots shares a fixed number of places (TFTP transfers, HTTP
// connections, DHCP handlers) among clients so that one cannot take them
// from the others: a key (a source address, a MAC) holds at most per of
// them, and the last reserve are for privileged keys only (machines the
// service knows). A key is in the table only while it holds a place, so
// the table never outgrows total.
type slots struct {
	per, total, reserve int

	mu   sync.Mutex
	used int
	by   map[string]int
}

func newSlots(per, total, reserve int) *slots {
	return &slots{per: per, total: total, reserve: reserve, by: map[string]int{}}
}

// take gives key a place, unless it holds per already or all are taken
// (all but the reserve, for a key not privileged).
func (s *slots) take(key string, privileged bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := s.total
	if !privileged {
		limit -= s.reserve
	}
	if s.used >= limit || s.by[key] >= s.per {
		return false
	}
	s.used++
	s.by[key]++
	return true
}

// release gives back a place key took.
func (s *slots) release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used--
	if s.by[key]--; s.by[key] <= 0 {
		delete(s.by, key)
	}
}
